// Runs inside Chromium (bundled by test/helpers/browser.ts with the browser build's shims): a p2ptls Host
// on the browser's own RTCPeerConnection and WebCrypto, driven from Node by test/e2e/browser-node.test.ts
// through `globalThis.peerTest`. Every ICE candidate Chromium gathers is recorded (before p2ptls filters
// it) so a failing test can show what the browser offered.
import {
  type Connection,
  type Datagram,
  Identity,
  isP2PTLSError,
  loopbackOnly,
  openMemoryPeerStore,
  PublicIdentity,
  SignalingClient,
  startBrowserHost,
} from '../../src/browser.js';
import type { Host } from '../../src/host/host.js';
import { fromBase64Url } from '../../src/util/bytes.js';

/** Every local ICE candidate line gathered by any RTCPeerConnection of this page. */
const gathered: string[] = [];
/** ICE connection states seen, in order. */
const iceStates: string[] = [];
/** Every RTCPeerConnection this page created. */
const peerConnections: RTCPeerConnection[] = [];

/** Chromium's RTCPeerConnection, recording its local candidates and ICE states. */
class RecordingPeerConnection extends RTCPeerConnection {
  constructor(config?: RTCConfiguration) {
    super(config);
    peerConnections.push(this);
    this.addEventListener('icecandidate', (e) => {
      if (e.candidate?.candidate) gathered.push(e.candidate.candidate);
    });
    this.addEventListener('iceconnectionstatechange', () => iceStates.push(this.iceConnectionState));
  }
}

let host: Host | undefined;
let signaling: SignalingClient | undefined;
const connections = new Map<string, Connection>();
const accepted: Connection[] = [];
const acceptErrors: string[] = [];
const inbox = new Map<string, Uint8Array[]>();
const datagrams = new Map<string, Datagram[]>();
let nextId = 0;

function track(conn: Connection): string {
  const id = `c${nextId++}`;
  connections.set(id, conn);
  inbox.set(id, []);
  datagrams.set(id, []);
  conn.on('message', (m) => inbox.get(id)?.push(m));
  conn.datagrams.on('datagram', (d) => datagrams.get(id)?.push(d));
  return id;
}

function conn(id: string): Connection {
  const c = connections.get(id);
  if (!c) throw new Error(`no connection ${id}`);
  return c;
}

const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
const sha256 = async (b: Uint8Array) =>
  hex(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Deterministic bytes: byte i is (i * 31 + seed) mod 251, so both sides can build and check them. */
function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) % 251;
  return out;
}

const describeError = (err: unknown) =>
  isP2PTLSError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);

const api = {
  /** Starts the browser host with its secret identity and one paired peer (public identity + PSK). */
  async start(opts: { url: string; secret: unknown; peer: unknown; psk: string }) {
    const identity = await Identity.importSecret(opts.secret);
    const peers = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
    await peers.put({ publicIdentity: await PublicIdentity.import(opts.peer), psk: fromBase64Url(opts.psk) });
    signaling = new SignalingClient({ url: opts.url, identity, requestTimeoutMs: 10_000 });
    host = await startBrowserHost({
      identity,
      peers,
      signaling,
      rtc: {
        name: 'chromium',
        RTCPeerConnection: RecordingPeerConnection,
        RTCSessionDescription,
        RTCIceCandidate,
      },
      candidateFilter: loopbackOnly,
      handshakeTimeoutMs: 15_000,
    });
    const h = host;
    void (async () => {
      for await (const req of h.incoming()) {
        req.verify().then(
          (c) => accepted.push(c),
          (err: unknown) => acceptErrors.push(describeError(err)),
        );
      }
    })();
    return { peerId: host.peerId };
  },
  /** Dials a paired peer; returns the connection's handle, or the error. */
  async connect(peerId: string) {
    try {
      const c = await host!.connect(peerId);
      return { ok: true as const, id: track(c), peerId: c.peerId };
    } catch (err) {
      return { ok: false as const, error: describeError(err) };
    }
  },
  /** The next connection accepted by the incoming loop, within `ms`. */
  async nextAccepted(ms: number) {
    const deadline = performance.now() + ms;
    while (accepted.length === 0) {
      if (performance.now() > deadline)
        return { ok: false as const, error: `none; errors: ${acceptErrors.join('; ')}` };
      await sleep(20);
    }
    const c = accepted.shift()!;
    return { ok: true as const, id: track(c), peerId: c.peerId };
  },
  async send(id: string, text: string) {
    await conn(id).send(text);
  },
  /** Sends `size` pattern bytes; returns their SHA-256 (hex, WebCrypto). */
  async sendPattern(id: string, size: number, seed: number) {
    const data = pattern(size, seed);
    const digest = await sha256(data);
    await conn(id).send(data);
    return digest;
  },
  /** Waits for the next TCP-mode message; returns its length, SHA-256 (WebCrypto) and, if short, its text. */
  async nextMessage(id: string, ms: number) {
    const box = inbox.get(id)!;
    const deadline = performance.now() + ms;
    while (box.length === 0) {
      if (performance.now() > deadline) return null;
      await sleep(10);
    }
    const m = box.shift()!;
    return {
      length: m.byteLength,
      sha256: await sha256(m),
      text: m.byteLength <= 1024 ? new TextDecoder().decode(m) : null,
    };
  },
  /** Sends `count` datagrams "<prefix> <i>" spaced by `gapMs`; returns their sequence numbers. */
  async sendDatagrams(id: string, prefix: string, count: number, gapMs: number) {
    const seqs: number[] = [];
    for (let i = 0; i < count; i++) {
      seqs.push(await conn(id).sendDatagram(`${prefix} ${i}`));
      await sleep(gapMs);
    }
    return seqs;
  },
  /** Texts of the datagrams received so far on `id`. */
  receivedDatagrams(id: string) {
    return (datagrams.get(id) ?? []).map((d) => new TextDecoder().decode(d.data));
  },
  async stats(id: string) {
    const s = await conn(id).stats();
    return { local: s.localCandidateType ?? null, remote: s.remoteCandidateType ?? null };
  },
  /** Local and remote addresses of the selected candidate pair of every live RTCPeerConnection (getStats). */
  async selectedPairs() {
    const out: { local: string; remote: string; remoteType: string }[] = [];
    for (const pc of peerConnections) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      const byId = new Map<string, Record<string, unknown>>();
      report.forEach((v: Record<string, unknown>) => {
        byId.set(String(v.id), v);
      });
      for (const v of byId.values()) {
        if (v.type !== 'transport' || typeof v.selectedCandidatePairId !== 'string') continue;
        const pair = byId.get(v.selectedCandidatePairId);
        const local = byId.get(String(pair?.localCandidateId));
        const remote = byId.get(String(pair?.remoteCandidateId));
        out.push({
          local: String(local?.address ?? local?.ip),
          remote: String(remote?.address ?? remote?.ip ?? ''),
          remoteType: String(remote?.candidateType),
        });
      }
    }
    return out;
  },
  async closeConnection(id: string) {
    await conn(id).close(0, 'done');
    connections.delete(id);
  },
  /**
   * Gathers this page's ICE candidates without any peer (no ICE servers, no remote description: nothing
   * is sent): returns every candidate line once gathering completes.
   */
  async gatherOnly() {
    const pc = new RTCPeerConnection();
    pc.createDataChannel('probe');
    const lines: string[] = [];
    const done = new Promise<void>((resolve) => {
      pc.addEventListener('icecandidate', (e) => {
        if (e.candidate?.candidate) lines.push(e.candidate.candidate);
        else resolve();
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    await Promise.race([done, sleep(10_000)]);
    pc.close();
    return lines;
  },
  diagnostics() {
    return { gathered: [...gathered], iceStates: [...iceStates], acceptErrors: [...acceptErrors] };
  },
  async stop() {
    for (const c of connections.values()) await c.close(0, 'stop').catch(() => {});
    connections.clear();
    await host?.close();
    await signaling?.close();
  },
};

export type PeerTestApi = typeof api;
(globalThis as { peerTest?: PeerTestApi }).peerTest = api;
(globalThis as { __ready?: boolean }).__ready = true;
