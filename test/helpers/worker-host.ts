/**
 * The host of a mesh member running in its own process (test/mesh/mesh-worker.ts,
 * test/train/train-worker.ts): an identity and its paired peers from the parent's JSON config, a memory
 * store, wrtc on loopback. Prints `ready <peerId>` once the host is up.
 */
import { Host } from '../../src/host/host.js';
import { Identity, PublicIdentity } from '../../src/identity/identity.js';
import type { PublicIdentityJson, SecretIdentityJson } from '../../src/identity/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { nodeRtc } from '../../src/runtime/node-rtc.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { openMemoryPeerStore } from '../../src/store/index.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { fromBase64Url } from '../../src/util/bytes.js';

/** What a worker process needs for its host. */
export interface WorkerHostConfig {
  url: string;
  identity: SecretIdentityJson;
  /** Paired peers: public identity and base64url PSK. */
  peers: { identity: PublicIdentityJson; psk: string }[];
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

export async function startWorkerHost(config: WorkerHostConfig): Promise<Host> {
  const identity = await Identity.importSecret(config.identity);
  const store = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
  for (const p of config.peers) {
    await store.put({ publicIdentity: await PublicIdentity.import(p.identity), psk: fromBase64Url(p.psk) });
  }
  const host = await Host.start({
    identity,
    peers: store,
    signaling: new SignalingClient({ url: config.url, identity }),
    rtc: await nodeRtc('wrtc'),
    candidateFilter: loopbackOnly,
    aead: nodeCryptoAead,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
  });
  console.log(`ready ${identity.peerId}`);
  return host;
}
