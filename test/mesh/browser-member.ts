// Runs inside Chromium (bundled by test/helpers/browser.ts): a p2ptls Host on the browser's own
// RTCPeerConnection and WebCrypto that joins a mesh with Node members, driven through
// `globalThis.meshTest` by test/mesh/browser.test.ts.
import {
  Identity,
  isP2PTLSError,
  joinMesh,
  loopbackOnly,
  type Mesh,
  openMemoryPeerStore,
  PublicIdentity,
  SignalingClient,
  startBrowserHost,
} from '../../src/browser.js';
import type { Host } from '../../src/host/host.js';
import { fromBase64Url } from '../../src/util/bytes.js';

let host: Host | undefined;
let mesh: Mesh | undefined;

const describeError = (err: unknown) =>
  isP2PTLSError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);

const api = {
  /** Starts the host with its identity and paired peers, and joins `room`. */
  async join(opts: {
    url: string;
    secret: unknown;
    peers: { identity: unknown; psk: string }[];
    room: string;
  }) {
    const identity = await Identity.importSecret(opts.secret);
    const peers = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
    for (const p of opts.peers) {
      await peers.put({ publicIdentity: await PublicIdentity.import(p.identity), psk: fromBase64Url(p.psk) });
    }
    host = await startBrowserHost({
      identity,
      peers,
      signaling: new SignalingClient({ url: opts.url, identity, requestTimeoutMs: 10_000 }),
      candidateFilter: loopbackOnly,
      handshakeTimeoutMs: 15_000,
    });
    mesh = await joinMesh(host, opts.room);
    return { peerId: host.peerId };
  },
  async waitForMembers(count: number) {
    await mesh!.waitForMembers(count, 30_000);
    return mesh!.ring;
  },
  /**
   * allReduce of `n` elements where element i is `(i % 97) * scale` here; returns the result as plain
   * numbers (JSON crosses the page boundary) or the error.
   */
  async allReduce(n: number, scale: number, op: 'sum' | 'mean') {
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) t[i] = (i % 97) * scale;
    try {
      const r = await mesh!.allReduce(t, op);
      return { ok: true as const, values: Array.from(r) };
    } catch (err) {
      return { ok: false as const, error: describeError(err) };
    }
  },
  async barrier() {
    await mesh!.barrier();
    return true;
  },
  async stop() {
    await host?.close();
  },
};

export type MeshTestApi = typeof api;
(globalThis as { meshTest?: MeshTestApi }).meshTest = api;
(globalThis as { __ready?: boolean }).__ready = true;
