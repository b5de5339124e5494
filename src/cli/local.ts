/**
 * Two (or more) hosts in one process on loopback, paired through a real signaling server with a real
 * invite: what `p2ptls bench` and `npm run demo:node` are built on.
 */
import { startSignalingServer } from '../../signaling-server/server.js';
import type { Host } from '../host/host.js';
import type { Identity } from '../identity/identity.js';
import type { PeerId } from '../identity/peer-id.js';
import type { NodeRtcBackend } from '../runtime/node-rtc.js';
import { SignalingClient } from '../signaling/client.js';
import type { PeerStore } from '../store/types.js';
import { type GlobalOptions, type Scope, startHost } from './context.js';

/** One in-process peer. */
export interface LocalPeer {
  readonly name: string;
  readonly identity: Identity;
  readonly store: PeerStore;
  readonly signaling: SignalingClient;
  readonly host: Host;
  /** Resolves once a pair with `peerId` is in this peer's store. */
  paired(peerId: PeerId): Promise<void>;
}

/** A signaling server on a random loopback port, closed with `scope`. */
export async function startLocalSignaling(scope: Scope): Promise<string> {
  const server = await startSignalingServer({
    port: 0,
    host: '127.0.0.1',
    logLevel: 'warn',
    // One process plays every peer here: the per-connection rate limit would throttle the benchmark.
    limits: { eventsPerSecond: 0, ipEventsPerSecond: 0, ipConnectionsPerMinute: 0 },
  });
  scope.defer(() => server.close());
  return server.url;
}

/** Starts a host for `identity` on `url`, with `store` as its peer list. */
export async function startLocalPeer(
  name: string,
  url: string,
  identity: Identity,
  store: PeerStore,
  backend: NodeRtcBackend,
  scope: Scope,
): Promise<LocalPeer> {
  const signaling = new SignalingClient({ url, identity });
  scope.defer(() => signaling.close());
  await signaling.connect();
  const options: GlobalOptions = {
    data: '',
    signal: url,
    signalGiven: true,
    json: false,
    debug: false,
    backend,
  };
  const stored = new Set<PeerId>();
  const waiters = new Map<PeerId, () => void>();
  const host = await startHost(options, identity, store, signaling, scope);
  host.on('paired', ({ publicIdentity: { peerId } }) => {
    stored.add(peerId);
    waiters.get(peerId)?.();
  });
  const paired = (peerId: PeerId) =>
    stored.has(peerId) ? Promise.resolve() : new Promise<void>((resolve) => waiters.set(peerId, resolve));
  return { name, identity, store, signaling, host, paired };
}

/**
 * Pairs `a` with `b` the way two people would: `b` creates an invite, `a` redeems it. Resolves once both
 * stores hold the pair.
 */
export async function pairLocal(a: LocalPeer, b: LocalPeer): Promise<{ invite: string; ms: number }> {
  const t0 = performance.now();
  const invite = b.host.createInvite();
  const bStored = b.paired(a.identity.peerId);
  await a.host.pair(invite, { label: b.name });
  await bStored;
  return { invite, ms: performance.now() - t0 };
}
