import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** Prometheus metrics of one signaling server (its own registry, so several servers can share a process). */
export class SignalingMetrics {
  readonly registry = new Registry();
  /** Sockets connected, authenticated or not. */
  readonly connections = new Gauge({
    name: 'p2ptls_signaling_connections',
    help: 'Socket.io connections open on this process (authenticated or not)',
    registers: [this.registry],
  });
  /** Authenticated peers on this process. */
  readonly peers = new Gauge({
    name: 'p2ptls_signaling_connected_peers',
    help: 'Authenticated peers connected to this process',
    registers: [this.registry],
  });
  readonly relayed = new Counter({
    name: 'p2ptls_signaling_relayed_messages_total',
    help: 'Messages relayed to a peer, by kind (signal, pairing)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'p2ptls_signaling_rejected_messages_total',
    help: 'Client events rejected, by reason (error code)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly disconnects = new Counter({
    name: 'p2ptls_signaling_disconnects_total',
    help: 'Connections the server closed for cause, by reason (flood, not_authenticated, auth_failed, auth_timeout, slow_consumer)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  // Label children bound once for the per-event paths: `inc({ kind })` hashes its labels on every call.
  readonly relayedSignals = this.relayed.labels('signal');
  readonly rejectedRateLimited = this.rejected.labels('rate_limited');
  readonly pairingRequests = new Counter({
    name: 'p2ptls_signaling_pairing_requests_total',
    help: 'Pairing requests relayed',
    registers: [this.registry],
  });
  readonly auth = new Counter({
    name: 'p2ptls_signaling_auth_total',
    help: 'Authentication attempts, by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor() {
    // Memory and event-loop metrics come with the defaults (process_resident_memory_bytes,
    // nodejs_heap_size_used_bytes), which the benchmark reads to compute memory per connection.
    collectDefaultMetrics({ register: this.registry });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
