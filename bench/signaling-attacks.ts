/**
 * `npm run bench:signaling -- --attacks [--pair raw|client] [--runs R (default 1)] [--seconds S (default 5)] [--server PATH]`
 *
 * A legitimate pair's relay latency while the signaling server is under each attack of issue 17, beside
 * the unloaded figure measured in the same run. The server is signaling-server/main.ts (or PATH, e.g.
 * another checkout's, for a before/after) in its own process with DEFAULT limits. The pair, on 127.0.0.1,
 * each sends the other a signal every 20 ms, and the latency is send → delivery on one clock:
 *
 *   --pair raw     two raw authenticated socket.io clients; signals signed before the clock starts, so
 *                  the figure is the server's relay alone (default)
 *   --pair client  two SignalingClients, paired (each pins the other's key), as a Host uses them: the
 *                  figure adds signing, verification and the client's inbound queue (issue 17 point 3)
 *
 * Attackers run in a child process of their own (so that generating the attack does not slow the
 * measuring process) from other 127.x addresses:
 *
 *   preauth   50 unauthenticated sockets from 5 addresses, 600 events/s each (30k/s), reconnecting when dropped
 *   recipient 40 authenticated senders from one address, each within its 100/s budget, all to the pair's B
 *   room      60 members in a room with the pair, 20 join/leave spammers at ~90 changes/s each
 *   idle      3000 sockets from 50 addresses that connect and never authenticate
 *   lookup    20 authenticated clients that never read, 1000 lookups/s each, reconnecting when dropped
 *
 * Also reported: /healthz probes (every 250 ms) that failed or took over 1 s, and the pair's signals
 * that were refused or lost. Several runs report the median with min–max.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import { isP2PTLSError } from '../src/errors.js';
import { Identity } from '../src/identity/identity.js';
import { SignalingClient } from '../src/signaling/client.js';
import type { SignedSignal } from '../src/signaling/messages.js';
import { randomNonce, signalSignedBytes } from '../src/signaling/wire.js';
import { toBase64Url } from '../src/util/bytes.js';
import {
  type BenchIdentity,
  connectOurs,
  loadIdentities,
  pssSign,
  spawnServer,
  stop,
} from './signaling-clients.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ATTACKS = ['preauth', 'recipient', 'room', 'idle', 'lookup'] as const;
type Phase = 'unloaded' | (typeof ATTACKS)[number];
/** Identities: 0 and 1 are the pair, the rest attackers (the room attack needs 80). */
const IDENTITIES = 82;
const PAIR_INTERVAL_MS = 20;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function signal(from: BenchIdentity, to: string, payload: string): Promise<SignedSignal> {
  const unsigned = { v: 1, from: from.peerId, to, ts: Date.now(), nonce: randomNonce(), payload } as const;
  return { ...unsigned, sig: toBase64Url(await pssSign(from.key, signalSignedBytes(unsigned))) };
}

/** A raw socket.io connection from `localAddress`, not authenticated. */
function rawSocket(url: string, localAddress: string): Socket {
  // engine.io-client hands `localAddress` to the `ws` package in Node; its types only omit it.
  const options = { transports: ['websocket'], reconnection: false, forceNew: true, localAddress };
  return io(url, options as Parameters<typeof io>[1]);
}

// ---------------------------------------------------------------------------------------------------
// The measuring side.

interface PhaseResult {
  phase: Phase;
  p50: number;
  p99: number;
  sent: number;
  delivered: number;
  refused: Record<string, number>;
  healthFailures: number;
  healthMaxMs: number;
  attack: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

type PairResult = Omit<PhaseResult, 'phase' | 'attack'>;

/** /healthz every 250 ms until `stop()`: probes that failed or took over 1 s, and the slowest. */
function healthProber(url: string): { stop(): Promise<{ failures: number; maxMs: number }> } {
  const health = { failures: 0, maxMs: 0 };
  let running = true;
  const probing = (async () => {
    while (running) {
      const t = performance.now();
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.text();
        if (!res.ok) health.failures++;
      } catch {
        health.failures++;
      }
      health.maxMs = Math.max(health.maxMs, performance.now() - t);
      await sleep(250);
    }
  })();
  return {
    async stop() {
      running = false;
      await probing;
      return health;
    },
  };
}

/** The pair's signals by key: when each was sent, its delivery latency, or why it was refused. */
class Deliveries<K> {
  private readonly sentAt = new Map<K, number>();
  private readonly latencies: number[] = [];
  private readonly refused: Record<string, number> = {};
  private sent = 0;

  send(key: K): void {
    this.sentAt.set(key, performance.now());
    this.sent++;
  }

  arrived(key: K): void {
    const t = this.sentAt.get(key);
    if (t === undefined) return;
    this.sentAt.delete(key);
    this.latencies.push(performance.now() - t);
  }

  refuse(key: K, code: string): void {
    this.sentAt.delete(key);
    this.refused[code] = (this.refused[code] ?? 0) + 1;
  }

  /** What the phase measured, with the /healthz probes of the same span. */
  result(health: { failures: number; maxMs: number }): PairResult {
    const sorted = [...this.latencies].sort((x, y) => x - y);
    return {
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      sent: this.sent,
      delivered: sorted.length,
      refused: this.refused,
      healthFailures: health.failures,
      healthMaxMs: health.maxMs,
    };
  }
}

/** Runs `tick` every {@link PAIR_INTERVAL_MS} for `seconds`. */
async function paced(seconds: number, tick: () => Promise<void>): Promise<void> {
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const started = performance.now();
    await tick();
    await sleep(Math.max(0, PAIR_INTERVAL_MS - (performance.now() - started)));
  }
}

/** The legitimate pair: raw clients (the server's relay alone) or SignalingClients (as a Host uses them). */
interface LegitPair {
  /** Whom the recipient attack floods: the pair's second member. */
  victim: string;
  measure(url: string, phase: Phase, seconds: number): Promise<PairResult>;
}

function rawPair(ids: BenchIdentity[]): LegitPair {
  return {
    victim: ids[1]!.peerId,
    measure: (url, phase, seconds) => measureRawPair(url, ids, phase, seconds),
  };
}

async function clientPair(): Promise<LegitPair> {
  const ids = (await Promise.all([Identity.generate(), Identity.generate()])) as [Identity, Identity];
  return {
    victim: ids[1].peerId,
    measure: (url, phase, seconds) => measureClientPair(url, ids, phase, seconds),
  };
}

async function measureClientPair(
  url: string,
  ids: [Identity, Identity],
  phase: Phase,
  seconds: number,
): Promise<PairResult> {
  const [a, b] = ids.map((identity) => new SignalingClient({ url, identity })) as [
    SignalingClient,
    SignalingClient,
  ];
  a.trustPeer(ids[1].publicIdentity);
  b.trustPeer(ids[0].publicIdentity);
  try {
    await Promise.all([a.connect(), b.connect()]);
    if (phase === 'room') for (const c of [a, b]) await c.joinRoom('bench');
    const log = new Deliveries<number>();
    for (const c of [a, b]) {
      c.on('signal', ({ data }) => {
        const k = (data as { k?: unknown }).k;
        if (typeof k === 'number') log.arrived(k);
      });
    }
    const prober = healthProber(url);
    const sends: Promise<void>[] = [];
    let k = 0;
    await paced(seconds, async () => {
      for (const [from, to] of [
        [a, ids[1]],
        [b, ids[0]],
      ] as const) {
        const n = k++;
        log.send(n);
        sends.push(
          from.sendSignal(to.peerId, { type: 'candidate', k: n }).catch((err: unknown) => {
            log.refuse(n, isP2PTLSError(err) ? err.code : 'error');
          }),
        );
      }
    });
    await Promise.all(sends);
    await sleep(1000); // stragglers
    return log.result(await prober.stop());
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

async function measureRawPair(url: string, ids: BenchIdentity[], phase: Phase, seconds: number) {
  const [a, b] = await Promise.all([
    connectOurs(url, ids[0]!, '127.0.0.1'),
    connectOurs(url, ids[1]!, '127.0.0.1'),
  ]);
  if (phase === 'room') {
    for (const s of [a, b]) await s.timeout(10_000).emitWithAck('room:join', { room: 'bench' });
  }
  const log = new Deliveries<string>();
  for (const s of [a, b]) {
    s.on('signal', (msg: { env: { nonce: string } }) => log.arrived(msg.env.nonce));
  }
  const prober = healthProber(url);
  const pairs: [Socket, BenchIdentity, BenchIdentity][] = [
    [a, ids[0]!, ids[1]!],
    [b, ids[1]!, ids[0]!],
  ];
  let k = 0;
  await paced(seconds, async () => {
    for (const [socket, from, to] of pairs) {
      const env = await signal(from, to.peerId, JSON.stringify({ type: 'candidate', k: k++ }));
      log.send(env.nonce);
      socket.emit('signal', { env }, (ack: { ok?: boolean; error?: { code?: string } }) => {
        if (!ack?.ok) log.refuse(env.nonce, ack?.error?.code ?? 'no answer');
      });
    }
  });
  await sleep(1000); // stragglers
  const health = await prober.stop();
  a.disconnect();
  b.disconnect();
  return log.result(health);
}

function startAttacker(kind: string, url: string, victim: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/signaling.ts', '--attacker', kind, '--url', url, '--victim', victim],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (/^ready$/m.test(buf)) {
        child.stdout?.off('data', onData);
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`attacker ${kind} exited with ${code}`)));
  });
}

async function stopAttacker(child: ChildProcess): Promise<string> {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await stop(child);
  return out.match(/^summary (.*)$/m)?.[1] ?? '';
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) return;
    } catch {}
    await sleep(200);
  }
  throw new Error('server did not recover');
}

const fmt = (x: number, d = 1) =>
  Number.isFinite(x) ? x.toFixed(d) : x === Number.POSITIVE_INFINITY ? '∞' : 'n/a';

function spread(values: number[], d = 1): string {
  const s = [...values].sort((x, y) => x - y);
  const median = s[Math.floor(s.length / 2)]!;
  return s.length === 1 ? fmt(median, d) : `${fmt(median, d)} (${fmt(s[0]!, d)}–${fmt(s[s.length - 1]!, d)})`;
}

export async function runAttacks(opts: {
  serverEntry: string;
  pair: 'raw' | 'client';
  runs: number;
  seconds: number;
}): Promise<void> {
  const ids = await loadIdentities(IDENTITIES);
  const pair = opts.pair === 'client' ? await clientPair() : rawPair(ids);
  console.log(
    `signaling attack bench: legitimate ${opts.pair === 'client' ? 'SignalingClient' : 'raw-client'} pair, one signal each way every ${PAIR_INTERVAL_MS} ms, ${opts.seconds} s per phase, ${opts.runs} run(s); server ${opts.serverEntry} with default limits`,
  );
  const byPhase = new Map<Phase, PhaseResult[]>();
  for (let run = 0; run < opts.runs; run++) {
    const { url, child } = await spawnServer([opts.serverEntry, '--port', '0', '--log-level', 'error']);
    try {
      for (const phase of ['unloaded', ...ATTACKS] as Phase[]) {
        await waitHealthy(url);
        await sleep(1000);
        const attacker = phase === 'unloaded' ? null : await startAttacker(phase, url, pair.victim);
        try {
          if (attacker) await sleep(1000); // let the attack build up
          // The idle sockets' auth timeout is part of that attack: measure through it.
          const seconds = phase === 'idle' ? Math.max(opts.seconds, 12) : opts.seconds;
          // A server that cannot even let the pair log in fails the phase (p99 = ∞), not the bench.
          const r = await pair.measure(url, phase, seconds).catch((err: unknown) => ({
            p50: Number.POSITIVE_INFINITY,
            p99: Number.POSITIVE_INFINITY,
            sent: 0,
            delivered: 0,
            refused: { [`pair failed: ${err instanceof Error ? err.message : String(err)}`]: 1 },
            healthFailures: 0,
            healthMaxMs: Number.NaN,
          }));
          const attack = attacker ? await stopAttacker(attacker) : '';
          const result = { phase, ...r, attack };
          byPhase.set(phase, [...(byPhase.get(phase) ?? []), result]);
          if (process.env.BENCH_DEBUG) console.error(JSON.stringify(result));
        } finally {
          if (attacker) await stop(attacker);
        }
      }
    } finally {
      await stop(child);
    }
  }
  console.log(
    `${'phase'.padEnd(11)}${'p50 ms'.padStart(20)}${'p99 ms'.padStart(22)}${'delivered'.padStart(12)}  refused / healthz / attack (last run)`,
  );
  for (const [phase, rs] of byPhase) {
    const last = rs[rs.length - 1]!;
    const refused = Object.entries(last.refused)
      .map(([c, n]) => `${c}=${n}`)
      .join(',');
    console.log(
      `${phase.padEnd(11)}${spread(
        rs.map((r) => r.p50),
        2,
      ).padStart(20)}${spread(
        rs.map((r) => r.p99),
        1,
      ).padStart(
        22,
      )}${`${last.delivered}/${last.sent}`.padStart(12)}  ${refused || 'none'} / healthz fail=${last.healthFailures} max=${fmt(last.healthMaxMs, 0)}ms / ${last.attack}`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const unloaded = median(byPhase.get('unloaded')!.map((r) => r.p99));
  const worst = Math.max(...ATTACKS.map((a) => median(byPhase.get(a)!.map((r) => r.p99))));
  console.log(
    `headline: pair_relay_p99_ms_worst_attack ours=${fmt(worst)} baseline=${fmt(unloaded)} ratio=${fmt(unloaded / worst, 2)}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// The attacking side (a child process: `bench/signaling.ts --attacker KIND --url URL --victim PEERID`).

interface AttackStats {
  events: number;
  answers: number;
  disconnects: number;
  refusedConnects: number;
  roomEvents: number;
}

export async function runAttacker(kind: string, url: string, victim: string): Promise<void> {
  const ids = await loadIdentities(IDENTITIES);
  const stats: AttackStats = { events: 0, answers: 0, disconnects: 0, refusedConnects: 0, roomEvents: 0 };
  const timers = new Set<ReturnType<typeof setInterval>>();
  let stopping = false;
  const every = (ms: number, fn: () => void) => {
    const t = setInterval(fn, ms);
    timers.add(t);
    return t;
  };
  process.on('SIGTERM', () => {
    stopping = true;
    for (const t of timers) clearInterval(t);
    console.log(
      `summary ${Object.entries(stats)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    process.exit(0);
  });
  const answered = () => {
    stats.answers++;
  };

  /** Keeps one attacking connection alive: `start` runs on each (re)connection, `stop` on each loss. */
  const persistent = (open: () => Promise<Socket>, start: (s: Socket) => () => void) => {
    const loop = async () => {
      while (!stopping) {
        let s: Socket;
        try {
          s = await open();
        } catch {
          stats.refusedConnects++;
          await sleep(200);
          continue;
        }
        const halt = start(s);
        await new Promise<void>((resolve) => s.once('disconnect', () => resolve()));
        halt();
        stats.disconnects++;
        await sleep(50);
      }
    };
    void loop();
  };

  const authed = (id: BenchIdentity, address: string) => () => connectOurs(url, id, address);
  const unauthenticated = (address: string) => () =>
    new Promise<Socket>((resolve, reject) => {
      const s = rawSocket(url, address);
      s.once('challenge', () => resolve(s));
      s.once('connect_error', (err) => reject(err));
    });

  if (kind === 'preauth') {
    for (let i = 0; i < 50; i++) {
      persistent(unauthenticated(`127.0.1.${1 + (i % 5)}`), (s) => {
        const t = every(10, () => {
          for (let k = 0; k < 6; k++) {
            stats.events++;
            s.emit('lookup', { peerId: victim }, answered);
          }
        });
        return () => clearInterval(t);
      });
    }
  } else if (kind === 'recipient') {
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const id = ids[2 + i]!;
        const env = await signal(id, victim, JSON.stringify({ flood: i }));
        persistent(authed(id, '127.0.2.1'), (s) => {
          // 2 per 21 ms: ~95/s, inside the sender's own 100/s budget.
          const t = every(21, () => {
            for (let k = 0; k < 2; k++) {
              stats.events++;
              s.emit('signal', { env }, answered);
            }
          });
          return () => clearInterval(t);
        });
      }),
    );
  } else if (kind === 'room') {
    const members = await Promise.all(
      Array.from({ length: 60 }, (_, i) => connectOurs(url, ids[2 + i]!, '127.0.3.1')),
    );
    for (const m of members) {
      m.on('room:joined', () => stats.roomEvents++);
      m.on('room:left', () => stats.roomEvents++);
      // The room's churn cap may refuse a burst of joins: retry until in.
      for (let tries = 0; tries < 100; tries++) {
        const ack = (await m.timeout(10_000).emitWithAck('room:join', { room: 'bench' })) as { ok?: boolean };
        if (ack.ok) break;
        await sleep(100);
      }
    }
    for (let i = 0; i < 20; i++) {
      persistent(authed(ids[62 + i]!, '127.0.3.2'), (s) => {
        // join + leave per 22 ms: ~90 events/s, inside the connection's 100/s budget.
        const t = every(22, () => {
          stats.events += 2;
          s.emit('room:join', { room: 'bench' }, answered);
          s.emit('room:leave', { room: 'bench' }, answered);
        });
        return () => clearInterval(t);
      });
    }
  } else if (kind === 'idle') {
    const open = async (i: number) => {
      try {
        const s = await unauthenticated(`127.0.4.${1 + (i % 50)}`)();
        s.once('disconnect', () => stats.disconnects++);
      } catch {
        stats.refusedConnects++;
      }
    };
    // 3000 in batches of 200, as fast as they open; never authenticated, never reconnected.
    for (let i = 0; i < 3000; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, k) => open(i + k)));
    }
  } else if (kind === 'lookup') {
    for (let i = 0; i < 20; i++) {
      persistent(authed(ids[2 + i]!, '127.0.5.1'), (s) => {
        // Never read again: answers pile up in the kernel, then in the server's queue.
        const ws = (s.io.engine.transport as unknown as { ws?: { _socket?: { pause(): void } } }).ws;
        ws?._socket?.pause();
        const t = every(10, () => {
          for (let k = 0; k < 10; k++) {
            stats.events++;
            s.emit('lookup', { peerId: victim }, answered);
          }
        });
        return () => clearInterval(t);
      });
    }
  } else {
    throw new Error(`unknown attack ${kind}`);
  }
  console.log('ready');
}
