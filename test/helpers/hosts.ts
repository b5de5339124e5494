/**
 * Shared set-up of the host end-to-end tests: a real signaling server process, identities generated once
 * per file, in-memory peer stores paired with shared random PSKs, and hosts on loopback only (every host
 * uses `loopbackOnly`; node-datachannel binds 127.0.0.1). `env.close()` tears everything down.
 *
 *   const env = await startEnv(3);                  // env.ids[0..2], env.url
 *   const a = await env.host(env.ids[0]!, { peers: [env.ids[1]!] });
 *   const b = await env.host(env.ids[1]!, { peers: [env.ids[0]!], backend: 'node-datachannel' });
 *   const accepted = autoAccept(b);                 // verifies every incoming dial
 *   const conn = await a.connect(b.peerId);
 *   ...
 *   await env.close();                              // in `after`
 */
import assert from 'node:assert/strict';
import { isP2PTLSError } from '../../src/errors.js';
import type { Connection } from '../../src/host/connection.js';
import { Host, type HostOptions } from '../../src/host/host.js';
import { Identity } from '../../src/identity/identity.js';
import { InitiatorHandshake } from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { nodeHandshakeCrypto } from '../../src/runtime/node-handshake.js';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { openMemoryPeerStore, type PeerStore } from '../../src/store/index.js';
import { dtlsOfferBinding, sdpFingerprint } from '../../src/transport/channel-binding.js';
import { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly, type RtcImplementation } from '../../src/transport/rtc.js';
import { toBase64Url } from '../../src/util/bytes.js';
import { type SignalingProcess, startSignalingProcess } from './processes.js';

export type Backend = NodeRtcBackend;
export const BACKENDS: readonly Backend[] = ['wrtc', 'node-datachannel'];

const rtcCache = new Map<Backend, Promise<RtcImplementation>>();

/** The backend's RtcImplementation; node-datachannel always bound to 127.0.0.1 (loopback only). */
export function loadRtc(backend: Backend): Promise<RtcImplementation> {
  let p = rtcCache.get(backend);
  if (!p) {
    p =
      backend === 'node-datachannel'
        ? nodeRtc('node-datachannel', { bindAddress: '127.0.0.1' })
        : nodeRtc('wrtc');
    rtcCache.set(backend, p);
  }
  return p;
}

/** wrtc, counting (and keeping) every RTCPeerConnection made through it. */
export async function countingRtc(): Promise<
  RtcImplementation & { made: RTCPeerConnection[]; openWhenMade: number[] }
> {
  const base = await loadRtc('wrtc');
  const made: RTCPeerConnection[] = [];
  /** For each one made, how many of those made before it were not closed at that moment. */
  const openWhenMade: number[] = [];
  class Counted extends base.RTCPeerConnection {
    constructor(config?: RTCConfiguration) {
      super(config);
      openWhenMade.push(made.filter((pc) => pc.signalingState !== 'closed').length);
      made.push(this);
    }
  }
  return { ...base, name: 'wrtc+counted', RTCPeerConnection: Counted, made, openWhenMade };
}

/**
 * wrtc whose RTCPeerConnections refuse the first `failures` remote descriptions of `type` given to any of
 * them, as node-datachannel's dialer sometimes fails to apply an answer (src/host/dial.ts, linkClosed):
 * the dial fails on that side only, before its link opens.
 */
export async function descriptionRefusingRtc(
  type: 'offer' | 'answer',
  failures: number,
): Promise<RtcImplementation & { refused: () => number }> {
  const base = await loadRtc('wrtc');
  let refused = 0;
  class Refusing extends base.RTCPeerConnection {
    override setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
      if (description.type === type && refused < failures) {
        refused++;
        return Promise.reject(new Error(`injected: the stack refused the ${type}`));
      }
      return super.setRemoteDescription(description);
    }
  }
  return { ...base, name: `wrtc+refusing-${type}`, RTCPeerConnection: Refusing, refused: () => refused };
}

/** What {@link openLinkPair} does with each pair it makes, before wiring it. */
export interface LinkPairOptions {
  /** Called on each new pair before its signals flow (taps, watchers): the last call is the returned pair's. */
  prepare?: (initiator: PeerLink, responder: PeerLink) => void;
  /** What the initiator is given of each responder signal (default: the signal itself). */
  toInitiator?: (signal: unknown) => unknown;
}

/**
 * Two real PeerLinks wired to each other in-process (signals passed directly), open. A pair that fails
 * before opening is made again, at most 3 times, as `Host.connect` retries such a set-up: under CPU
 * load node-datachannel failed 3–9 of 100 in-process pairs with "libdatachannel error while adding
 * remote description: Got a remote candidate without ICE transport" on the initiator's answer (beside
 * two busy loops; the libdatachannel race behind it: src/host/dial.ts, linkClosed), which left a test
 * waiting for an open that never came until the runner's 10-minute timeout.
 */
export async function openLinkPair(
  rtc: RtcImplementation,
  options: LinkPairOptions = {},
): Promise<[PeerLink, PeerLink]> {
  const failures: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const a = new PeerLink({ rtc, initiator: true, candidateFilter: loopbackOnly });
    const b = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
    options.prepare?.(a, b);
    const toInitiator = options.toInitiator ?? ((s: unknown) => s);
    a.on('signal', (s) => b.signal(s));
    b.on('signal', (s) => a.signal(toInitiator(s)));
    const opened = (link: PeerLink) => new Promise<void>((resolve) => link.once('open', () => resolve()));
    // One side failing fails the pair: the other may then never open nor close.
    const failed = (link: PeerLink, side: string) =>
      new Promise<string>((resolve) =>
        link.once('close', ({ error }) => resolve(`${side}: ${error?.message ?? 'closed'}`)),
      );
    const failure = await within(
      Promise.race([
        Promise.all([opened(a), opened(b)]).then(() => undefined),
        failed(a, 'initiator'),
        failed(b, 'responder'),
      ]),
      20_000,
      'both links open, or one closed',
    );
    if (failure === undefined) return [a, b];
    failures.push(`attempt ${attempt}: ${failure}`);
    console.log(`# ${rtc.name}: a link pair failed before opening, made again (${failures.at(-1)})`);
    a.close();
    b.close();
  }
  throw new Error(`no link pair opened: ${failures.join('; ')}`);
}

/** A random 32-byte pair PSK. */
export function randomPsk(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** Assertion predicate for `assert.rejects`: a P2PTLSError with exactly one of these codes. */
export function withCode(...codes: string[]) {
  return (err: unknown): true => {
    if (isP2PTLSError(err) && codes.includes(err.code)) return true;
    if (isP2PTLSError(err)) {
      assert.fail(`expected P2PTLSError(${codes.join('|')}), got P2PTLSError(${err.code}): ${err.message}`);
    }
    assert.fail(`expected P2PTLSError(${codes.join('|')}), got a foreign exception: ${String(err)}`);
  };
}

/** Rejects with a labelled error when `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it holds; fails with `label` after `ms`. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  label: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`${label}: condition not met within ${ms} ms`);
    await sleep(20);
  }
}

/** The next TCP-mode message of `conn` (from now), within `ms`. */
export function nextMessage(conn: Connection, ms = 15_000): Promise<Uint8Array> {
  return within(
    new Promise<Uint8Array>((resolve) => conn.once('message', resolve)),
    ms,
    `message from ${conn.peerId.slice(0, 8)}`,
  );
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Connections accepted by {@link autoAccept}, in arrival order. */
export interface Acceptor {
  /** The next accepted connection (past or future), within `ms`. */
  next(ms?: number): Promise<Connection>;
  /** Every accepted connection so far. */
  readonly accepted: Connection[];
  /** Errors of `request.verify()` (typed), in order. */
  readonly errors: unknown[];
  /** Resolves with the next verify error (past or future), within `ms`. */
  nextError(ms?: number): Promise<unknown>;
}

/** Runs `host.incoming()` in the background and verifies every request against the host's peer list. */
export function autoAccept(host: Host): Acceptor {
  const accepted: Connection[] = [];
  const errors: unknown[] = [];
  let taken = 0;
  let errorsTaken = 0;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  void (async () => {
    for await (const req of host.incoming()) {
      req.verify().then(
        (c) => {
          accepted.push(c);
          wake();
        },
        (err: unknown) => {
          errors.push(err);
          wake();
        },
      );
    }
  })();
  const waitFor = async <T>(take: () => T | undefined, ms: number, label: () => string): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${label()} within ${ms} ms`);
      await within(new Promise<void>((r) => waiters.push(r)), left, 'acceptor').catch(() => {});
    }
  };
  // A dial that failed on this side says why (e.g. where its handshake was stuck): name it when waiting
  // for a connection fails, so that a flaky run can be explained from its log.
  const failures = () =>
    errors.length === 0
      ? ''
      : ` (verify failed: ${errors.map((e) => (e instanceof Error ? `${(e as { code?: string }).code}: ${e.message}` : String(e))).join('; ')})`;
  return {
    accepted,
    errors,
    next: (ms = 20_000) =>
      waitFor(
        () => (taken < accepted.length ? accepted[taken++] : undefined),
        ms,
        () => `no accepted connection${failures()}`,
      ),
    nextError: (ms = 20_000) =>
      waitFor(
        () => (errorsTaken < errors.length ? errors[errorsTaken++] : undefined),
        ms,
        () => 'no verify error',
      ),
  };
}

/** Options of {@link Env.host}. */
export type TestHostOptions = Partial<Omit<HostOptions, 'identity' | 'peers' | 'signaling'>> & {
  /** Paired peers (the env's PSK of each pair), unless `store` is given. */
  peers?: Identity[];
  /** A ready store instead of `peers`. */
  store?: PeerStore;
  backend?: Backend;
};

export interface Env {
  readonly url: string;
  readonly server: SignalingProcess;
  readonly ids: Identity[];
  /** The PSK shared by the pair (a, b): random, the same in both directions. */
  psk(a: Identity, b: Identity): Uint8Array;
  /** A memory store of `me`'s `peers`, each with `psk(peer)` (default: the pair's PSK). */
  store(me: Identity, peers: Identity[], psk?: (peer: Identity) => Uint8Array): Promise<PeerStore>;
  /** A connected signaling client for `identity` (closed by `close`). */
  signaling(identity: Identity): SignalingClient;
  /** Starts a host on loopback (closed by `close`). */
  host(identity: Identity, options?: TestHostOptions): Promise<Host>;
  /** The signaling client a host of this env uses. */
  signalingOf(host: Host): SignalingClient;
  /** Closes a host and its signaling client now. */
  closeHost(host: Host): Promise<void>;
  /** Something to run at teardown (before the server is killed). */
  defer(fn: () => unknown): void;
  close(): Promise<void>;
}

/** Starts a signaling server process and generates `n` identities. */
export async function startEnv(n: number): Promise<Env> {
  const [server, ids] = await Promise.all([
    startSignalingProcess(),
    Promise.all(Array.from({ length: n }, () => Identity.generate())),
  ]);
  const psks = new Map<string, Uint8Array>();
  const hosts = new Map<Host, SignalingClient>();
  const clients = new Set<SignalingClient>();
  const stores = new Set<PeerStore>();
  const deferred: (() => unknown)[] = [];

  const env: Env = {
    url: server.url,
    server,
    ids,
    psk(a, b) {
      const key = [a.peerId, b.peerId].sort().join('|');
      let p = psks.get(key);
      if (!p) {
        p = randomPsk();
        psks.set(key, p);
      }
      return p;
    },
    async store(me, peers, psk = (p) => env.psk(me, p)) {
      const store = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
      stores.add(store);
      for (const p of peers) {
        await store.put({ publicIdentity: p.exportPublic(), psk: psk(p) });
      }
      return store;
    },
    signaling(identity) {
      const c = new SignalingClient({ url: server.url, identity, requestTimeoutMs: 10_000 });
      clients.add(c);
      return c;
    },
    async host(identity, options = {}) {
      const { peers = [], store, backend = 'wrtc', ...rest } = options;
      const peerStore = store ?? (await env.store(identity, peers));
      const signaling = env.signaling(identity);
      const host = await Host.start({
        identity,
        peers: peerStore,
        signaling,
        rtc: await loadRtc(backend),
        candidateFilter: loopbackOnly,
        aead: nodeCryptoAead,
        handshakeCrypto: nodeHandshakeCrypto,
        handshakeTimeoutMs: 15_000,
        ...rest,
      });
      hosts.set(host, signaling);
      return host;
    },
    signalingOf(host) {
      const sig = hosts.get(host);
      if (!sig) throw new Error('not a host of this env');
      return sig;
    },
    async closeHost(host) {
      const sig = hosts.get(host);
      hosts.delete(host);
      await host.close().catch(() => {});
      if (sig) {
        clients.delete(sig);
        await sig.close().catch(() => {});
      }
    },
    defer(fn) {
      deferred.push(fn);
    },
    async close() {
      for (const fn of deferred.splice(0).reverse()) {
        try {
          await fn();
        } catch {}
      }
      await Promise.all(
        [...hosts.keys()].map((h) => within(h.close(), 10_000, 'host.close').catch(() => {})),
      );
      hosts.clear();
      await Promise.all([...clients].map((c) => c.close().catch(() => {})));
      clients.clear();
      await Promise.all([...stores].map((s) => s.close().catch(() => {})));
      stores.clear();
      await server.kill();
      // Let WebRTC transports finish closing before the native stacks are torn down.
      await sleep(300);
    },
  };
  return env;
}

/** A dial made by hand: the WebRTC link of a p2ptls dial, without the p2ptls dialer logic. */
export interface RawDial {
  readonly id: string;
  readonly link: PeerLink;
  /** Resolves when both data channels are open. */
  readonly opened: Promise<void>;
  /** Resolves with the reason of the responder's `abort` signal for this dial. */
  readonly aborted: Promise<string>;
  /** Signals the responder sent for this dial (its answer, with handshake records, first). */
  readonly received: { signal: unknown; handshake?: string[] }[];
  close(): void;
}

/**
 * Dials `to` the way a host does (same signal envelope, same two channels) through `signaling`, with
 * `handshake(offerFingerprint)` as the offer's handshake records (PROTOCOL.md §8; default: a real
 * ClientHello from the signaling identity under a random PSK; null: none), so a test can send anything
 * with the offer and, once the link is open, over it. The link is closed by `close()`.
 */
export async function rawDial(
  signaling: SignalingClient,
  to: Identity,
  backend: Backend = 'wrtc',
  options: {
    /** false: never apply the responder's signals (a dial that can never connect). */ answer?: boolean;
    handshake?: ((offerFingerprint: string) => Promise<Uint8Array[]>) | null;
  } = {},
): Promise<RawDial> {
  if (!signaling.isAuthenticated) await signaling.connect();
  signaling.trustPeer(to.publicIdentity);
  const id = toBase64Url(crypto.getRandomValues(new Uint8Array(12)));
  const link = new PeerLink({ rtc: await loadRtc(backend), initiator: true, candidateFilter: loopbackOnly });
  const makeHandshake =
    options.handshake === undefined
      ? async (fp: string) => [
          (
            await InitiatorHandshake.start({
              identity: signaling.identity,
              peer: to.publicIdentity,
              psk: crypto.getRandomValues(new Uint8Array(32)),
              offerBinding: dtlsOfferBinding(fp),
            })
          ).hello,
        ]
      : options.handshake;
  // The offer goes first, with its handshake records; candidates wait behind it.
  let queue: unknown[] | undefined = [];
  const send = (signal: unknown, handshake?: Uint8Array[]) =>
    signaling
      .sendSignal(to.peerId, {
        p2ptls: 2,
        kind: 'signal',
        dial: id,
        signal,
        ...(handshake ? { handshake: handshake.map(toBase64Url) } : {}),
      })
      .catch(() => {});
  link.on('signal', (signal) => {
    const sdp =
      (signal as { type?: string; sdp?: string }).type === 'offer'
        ? (signal as { sdp: string }).sdp
        : undefined;
    if (sdp === undefined) {
      if (queue) queue.push(signal);
      else void send(signal);
      return;
    }
    void (async () => {
      const records = makeHandshake ? await makeHandshake(sdpFingerprint(sdp)) : undefined;
      await send(signal, records);
      for (const s of queue ?? []) void send(s);
      queue = undefined;
    })();
  });
  let abortedResolve!: (reason: string) => void;
  const aborted = new Promise<string>((r) => {
    abortedResolve = r;
  });
  const received: RawDial['received'] = [];
  const off = signaling.on('signal', ({ from, data }) => {
    if (from !== to.peerId || typeof data !== 'object' || data === null) return;
    const d = data as {
      dial?: unknown;
      kind?: unknown;
      signal?: unknown;
      reason?: unknown;
      handshake?: string[];
    };
    if (d.dial !== id) return;
    if (d.kind === 'signal') {
      received.push({ signal: d.signal, ...(d.handshake ? { handshake: d.handshake } : {}) });
      if (options.answer !== false) link.signal(d.signal);
    } else if (d.kind === 'abort') abortedResolve(String(d.reason));
  });
  const opened = new Promise<void>((resolve, reject) => {
    link.once('open', () => resolve());
    link.once('close', ({ error }) => reject(error ?? new Error('link closed before opening')));
  });
  opened.catch(() => {});
  return {
    id,
    link,
    opened,
    aborted,
    received,
    close() {
      off();
      link.close();
    },
  };
}
