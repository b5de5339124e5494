/**
 * `npm run soak` — four peers (two on @roamhq/wrtc, two on node-datachannel), all six pairs connected,
 * messages and datagrams flowing both ways without pause, and every few seconds on each pair one of:
 * a graceful close by either side while the other keeps sending, a key update, or a transport kill under
 * `keepConnected`. Checks, for every pair and round:
 *
 *   - every message whose send() resolved before close() was called arrives at the peer;
 *   - the peer sees the closer's code and reason, with no error;
 *   - every send() settles, and every rejection carries a p2ptls code;
 *   - a datagram that datagrams.send() reported as dropped (-1) never arrives;
 *   - a killed transport is reported as an error (truncated or timeout), never as a clean close.
 *
 * Flags: --seconds N (default 60), --event-ms N (mean time between events per pair, default 3000).
 * Ends with `soak: N passed, M failed` (rounds) and exits non-zero on any violation.
 */
import { startSignalingServer } from '../signaling-server/server.js';
import { isP2PTLSError } from '../src/errors.js';
import type { Connection } from '../src/host/connection.js';
import { Host } from '../src/host/host.js';
import type { ReconnectingConnection } from '../src/host/reconnecting.js';
import { Identity } from '../src/identity/index.js';
import { nodeCryptoAead } from '../src/runtime/node-aead.js';
import { type NodeRtcBackend, nodeRtc } from '../src/runtime/node-rtc.js';
import { SignalingClient } from '../src/signaling/client.js';
import { openMemoryPeerStore } from '../src/store/index.js';
import { loopbackOnly } from '../src/transport/rtc.js';
import { reexecInLoopbackNamespace } from './netns.mjs';

if (!reexecInLoopbackNamespace()) process.exit(0);

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const SECONDS = arg('--seconds', 60);
const EVENT_MS = arg('--event-ms', 3_000);
const BACKENDS: NodeRtcBackend[] = ['wrtc', 'wrtc', 'node-datachannel', 'node-datachannel'];

const violations: string[] = [];
/** Rounds (one connection's life, up to its close) with at least one violation. */
const failedRounds = new Set<string>();
const counts = {
  rounds: 0,
  dialFailures: 0,
  closes: 0,
  kills: 0,
  keyUpdates: 0,
  messages: 0,
  datagrams: 0,
  droppedReported: 0,
};
const currentRound = new Map<string, string>();
const violate = (what: string) => {
  violations.push(what);
  const pair = what.split(':')[0]!;
  failedRounds.add(currentRound.get(pair) ?? pair);
  console.log(`VIOLATION ${what}`);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const decoder = new TextDecoder();

/** One direction's traffic on one connection, with what it promised and what arrived on the other side. */
class Sender {
  /** Messages whose send() resolved. */
  readonly resolved = new Set<string>();
  /** Datagram ids reported dropped (-1). */
  readonly droppedDatagrams = new Set<string>();
  private stopped = false;
  private n = 0;
  private readonly done: Promise<void>;

  constructor(
    private readonly conn: Connection,
    private readonly tag: string,
  ) {
    this.done = Promise.all([this.messages(), this.datagrams()]).then(() => {});
  }

  private settledCheck(p: Promise<unknown>, what: string): Promise<unknown> {
    return p.then(
      (v) => v,
      (err: unknown) => {
        if (!isP2PTLSError(err))
          violate(`${this.tag}: ${what} rejected without a p2ptls code: ${String(err)}`);
        return undefined;
      },
    );
  }

  private async messages(): Promise<void> {
    while (!this.stopped && this.conn.isOpen) {
      // Continuous, but fair to the rest of the process: 24 senders share one event loop here, and a
      // loop that never yields would starve every timer and socket callback (heartbeats included).
      await new Promise((r) => setImmediate(r));
      const batch = Array.from({ length: 4 }, () => `${this.tag}#${this.n++}`);
      await Promise.all(
        batch.map((m) =>
          this.settledCheck(
            this.conn.send(m).then(() => {
              this.resolved.add(m);
              counts.messages++;
            }),
            'send()',
          ),
        ),
      );
    }
  }

  private async datagrams(): Promise<void> {
    let d = 0;
    while (!this.stopped && this.conn.isOpen) {
      const id = `${this.tag}~${d++}`;
      const seq = await this.settledCheck(this.conn.datagrams.send(id), 'datagrams.send()');
      if (seq === -1) {
        this.droppedDatagrams.add(id);
        counts.droppedReported++;
      } else if (typeof seq === 'number') counts.datagrams++;
      await sleep(2);
    }
  }

  /** Stops sending; resolves once every send in progress has settled (checked by the caller's timeout). */
  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }
}

/** What one side of a connection received. */
function receiver(conn: Connection) {
  const messages = new Set<string>();
  const datagrams = new Set<string>();
  conn.on('message', (m) => messages.add(decoder.decode(m)));
  conn.datagrams.on('datagram', (d) => datagrams.add(decoder.decode(d.data)));
  return { messages, datagrams };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    p,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        violate(`${what}: did not settle within ${ms} ms`);
        resolve(undefined);
      }, ms);
    }),
  ]);
  clearTimeout(timer);
  return r;
}

async function main(): Promise<void> {
  const server = await startSignalingServer({ port: 0, host: '127.0.0.1', logLevel: 'silent' });
  const ids = await Promise.all(BACKENDS.map(() => Identity.generate({ modulusLength: 2048 })));
  const psks = new Map<string, Uint8Array>();
  const pskOf = (a: number, b: number) => {
    const key = `${Math.min(a, b)}-${Math.max(a, b)}`;
    if (!psks.has(key)) psks.set(key, crypto.getRandomValues(new Uint8Array(32)));
    return psks.get(key)!;
  };
  /** Incoming connections per (acceptor, dialer). */
  const inbox = new Map<string, ((c: Connection) => void)[]>();
  const hosts = await Promise.all(
    ids.map(async (me, i) => {
      const store = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
      for (const [j, other] of ids.entries()) {
        if (j !== i) await store.put({ publicIdentity: other.exportPublic(), psk: pskOf(i, j) });
      }
      const host = await Host.start({
        identity: me,
        peers: store,
        signaling: new SignalingClient({ url: server.url, identity: me }),
        // node-datachannel binds every interface unless told; on one machine, bind it to loopback as the
        // tests do (without it, two of its peer connections in one process sometimes never connect).
        rtc: await nodeRtc(BACKENDS[i]!, { bindAddress: '127.0.0.1' }),
        candidateFilter: loopbackOnly,
        aead: nodeCryptoAead,
        heartbeatIntervalMs: 500,
        heartbeatTimeoutMs: 4_000,
      });
      void (async () => {
        for await (const req of host.incoming()) {
          req.verify().then(
            (c) => inbox.get(`${i}<${req.peerId}`)?.shift()?.(c),
            () => {},
          );
        }
      })();
      return host;
    }),
  );
  const nextAccepted = (acceptor: number, dialer: number) =>
    new Promise<Connection>((resolve) => {
      const key = `${acceptor}<${ids[dialer]!.peerId}`;
      inbox.set(key, [...(inbox.get(key) ?? []), resolve]);
    });

  const deadline = Date.now() + SECONDS * 1000;
  const pairs: [number, number][] = [];
  for (let a = 0; a < ids.length; a++) for (let b = a + 1; b < ids.length; b++) pairs.push([a, b]);

  async function runPair([a, b]: [number, number]): Promise<void> {
    const name = `${a}(${BACKENDS[a]})→${b}(${BACKENDS[b]})`;
    while (Date.now() < deadline) {
      counts.rounds++;
      currentRound.set(name, `${name}#${counts.rounds}`);
      const accepted = nextAccepted(b, a);
      let keeper: ReconnectingConnection;
      try {
        keeper = await hosts[a]!.keepConnected(ids[b]!.peerId);
      } catch (err) {
        // Not one of the invariants, but worth knowing: counted and printed.
        counts.dialFailures++;
        console.log(`  ${name}: dial failed: ${String(err)}`);
        continue;
      }
      let dialer = await keeper.ready();
      let acceptor = (await within(accepted, 20_000, `${name}: accept`))!;
      if (!acceptor) return;
      let kills = 0;
      // A few events on this connection, then a graceful close by one side.
      for (;;) {
        const rxA = receiver(dialer);
        const rxB = receiver(acceptor);
        const sendA = new Sender(dialer, `${name}/a`);
        const sendB = new Sender(acceptor, `${name}/b`);
        await sleep(EVENT_MS * (0.5 + Math.random()));
        const event = kills < 2 && Math.random() < 0.25 ? 'kill' : Math.random() < 0.3 ? 'keys' : 'close';
        if (event === 'keys') {
          counts.keyUpdates++;
          await Promise.all([dialer.updateKeys(), acceptor.updateKeys()]).catch((err: unknown) => {
            if (!isP2PTLSError(err)) violate(`${name}: updateKeys rejected untyped`);
          });
          await sleep(EVENT_MS * Math.random());
          await Promise.all([sendA.stop(), sendB.stop()]);
          // Nothing is lost on a live connection: a marker sent now arrives after everything resolved so far.
          const marker = `${name}/marker#${counts.keyUpdates}`;
          await dialer.send(marker);
          await within(
            new Promise<void>((r) => {
              const check = () => (rxB.messages.has(marker) ? r() : setImmediate(check));
              check();
            }),
            10_000,
            `${name}: marker after a key update`,
          );
          for (const m of sendA.resolved)
            if (!rxB.messages.has(m)) violate(`${name}: ${m} lost across a key update`);
          continue;
        }
        if (event === 'kill') {
          counts.kills++;
          kills++;
          const nextB = nextAccepted(b, a);
          const reconnected = new Promise<void>((r) => keeper.once('reconnected', () => r()));
          // The transport dies under both (as a crash or a network loss would).
          (dialer as unknown as { link: { close(): void } }).link.close();
          const info = await within(acceptor.closed, 15_000, `${name}: acceptor sees the kill`);
          if (info && !info.error) violate(`${name}: a killed transport closed cleanly at the acceptor`);
          if (info?.error && !['truncated', 'timeout'].includes(info.error.code)) {
            violate(`${name}: a killed transport reported ${info.error.code}`);
          }
          await within(
            Promise.all([sendA.stop(), sendB.stop()]),
            15_000,
            `${name}: sends settle after a kill`,
          );
          for (const id of sendA.droppedDatagrams)
            if (rxB.datagrams.has(id)) violate(`${name}: ${id} reported dropped but arrived`);
          await within(reconnected, 30_000, `${name}: keepConnected reconnects`);
          dialer = await keeper.ready();
          const next = await within(nextB, 20_000, `${name}: accept after reconnect`);
          if (!next) return;
          acceptor = next;
          continue;
        }
        // A graceful close by either side while both keep sending.
        counts.closes++;
        const byDialer = Math.random() < 0.5;
        const closer = byDialer ? dialer : acceptor;
        const peer = byDialer ? acceptor : dialer;
        const closerSends = byDialer ? sendA : sendB;
        const peerRx = byDialer ? rxB : rxA;
        const code = 1000 + Math.floor(Math.random() * 1000);
        const reason = `round ${counts.rounds} by ${byDialer ? 'dialer' : 'acceptor'}`;
        const promisedBefore = new Set(closerSends.resolved);
        const closing = byDialer ? keeper.close(code, reason) : closer.close(code, reason);
        const mine = await within(closing, 10_000, `${name}: close()`);
        const theirs = await within(peer.closed, 10_000, `${name}: peer sees the close`);
        await within(Promise.all([sendA.stop(), sendB.stop()]), 10_000, `${name}: every send settles`);
        if (mine?.error) violate(`${name}: close() reported ${mine.error.code}: ${mine.error.message}`);
        if (theirs && (theirs.code !== code || theirs.reason !== reason || theirs.error || !theirs.byPeer)) {
          violate(
            `${name}: the peer saw ${JSON.stringify({ ...theirs, error: theirs.error?.code })}, not ${code} "${reason}"`,
          );
        }
        for (const m of promisedBefore)
          if (!peerRx.messages.has(m)) violate(`${name}: ${m} was sent before close() and never arrived`);
        for (const m of closerSends.resolved)
          if (!peerRx.messages.has(m)) violate(`${name}: ${m} resolved but never arrived`);
        for (const [s, rx] of [
          [sendA, rxB],
          [sendB, rxA],
        ] as const) {
          for (const id of s.droppedDatagrams)
            if (rx.datagrams.has(id)) violate(`${name}: ${id} reported dropped but arrived`);
        }
        if (!byDialer) await keeper.close().catch(() => {});
        break;
      }
    }
  }

  console.log(`soak: ${SECONDS} s, 4 peers (${BACKENDS.join(', ')}), ${pairs.length} pairs`);
  const progress = setInterval(() => console.log(`  … ${JSON.stringify(counts)}`), 10_000);
  await Promise.all(pairs.map((p) => runPair(p)));
  clearInterval(progress);
  for (const h of hosts) await h.close();
  await server.close();
  console.log(JSON.stringify(counts));
  console.log(`${violations.length} violation(s)`);
  console.log(`soak: ${counts.rounds - failedRounds.size} passed, ${failedRounds.size} failed`);
  process.exit(violations.length ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
