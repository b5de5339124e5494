/**
 * N mesh members in one process, for the examples and bench/mesh.ts: a real signaling server (in
 * process, 127.0.0.1), fresh identities paired two by two with random PSKs in memory stores, Node hosts
 * on WebRTC restricted to loopback candidates, all joined to one room.
 */
import { startSignalingServer } from '../signaling-server/server.js';
import { Host } from '../src/host/host.js';
import { Identity } from '../src/identity/index.js';
import { joinMesh, type Mesh, type MeshOptions } from '../src/mesh/index.js';
import { nodeCryptoAead } from '../src/runtime/node-aead.js';
import { type NodeRtcBackend, nodeRtc } from '../src/runtime/node-rtc.js';
import { SignalingClient } from '../src/signaling/client.js';
import { openMemoryPeerStore } from '../src/store/index.js';
import { loopbackOnly } from '../src/transport/rtc.js';

export interface LocalMesh {
  meshes: Mesh[];
  hosts: Host[];
  close(): Promise<void>;
}

export async function startLocalMesh(
  n: number,
  options: { room?: string; mesh?: MeshOptions; backend?: NodeRtcBackend } = {},
): Promise<LocalMesh> {
  const server = await startSignalingServer({
    port: 0,
    host: '127.0.0.1',
    logLevel: 'warn',
    // Every member dials from the same address: the per-address limits are for the open Internet.
    limits: { ipEventsPerSecond: 0, ipConnectionsPerMinute: 0 },
  });
  const ids = await Promise.all(Array.from({ length: n }, () => Identity.generate()));
  // One PSK per pair, as pairing would have left in both stores.
  const psks = new Map<string, Uint8Array>();
  const psk = (a: Identity, b: Identity) => {
    const key = [a.peerId, b.peerId].sort().join('|');
    if (!psks.has(key)) psks.set(key, crypto.getRandomValues(new Uint8Array(32)));
    return psks.get(key)!;
  };
  const rtc =
    options.backend === 'node-datachannel'
      ? await nodeRtc('node-datachannel', { bindAddress: '127.0.0.1' })
      : await nodeRtc('wrtc');
  const signalings: SignalingClient[] = [];
  const hosts = await Promise.all(
    ids.map(async (me) => {
      const peers = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
      for (const other of ids) {
        if (other !== me) await peers.put({ publicIdentity: other.exportPublic(), psk: psk(me, other) });
      }
      const signaling = new SignalingClient({ url: server.url, identity: me });
      signalings.push(signaling);
      return Host.start({
        identity: me,
        peers,
        signaling,
        rtc,
        candidateFilter: loopbackOnly,
        aead: nodeCryptoAead,
      });
    }),
  );
  const room = options.room ?? 'local-mesh';
  const meshes = await Promise.all(hosts.map((h) => joinMesh(h, room, options.mesh)));
  await Promise.all(meshes.map((m) => m.waitForMembers(n)));
  return {
    meshes,
    hosts,
    async close() {
      await Promise.all(hosts.map((h) => h.close()));
      await Promise.all(signalings.map((s) => s.close()));
      await server.close();
      // Let the WebRTC transports finish closing before the process exits.
      await new Promise((r) => setTimeout(r, 300));
    },
  };
}
