/**
 * A p2ptls host in its own process, for tests that kill a peer. Configured by the JSON in the
 * P2PTLS_WORKER environment variable ({@link WorkerConfig}). Prints:
 *   ready <peerId>            once its host is started
 *   connected <sessionIdHex>  once the connection to the peer is up (it dials or accepts, per `role`)
 *   closed <code> <reason>    if the connection closes
 * and echoes every TCP-mode message back. Otherwise it waits until it is killed. Loopback only.
 */
import { Host } from '../../src/host/host.js';
import { Identity, PublicIdentity } from '../../src/identity/identity.js';
import type { PublicIdentityJson, SecretIdentityJson } from '../../src/identity/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { type NodeRtcBackend, nodeRtc } from '../../src/runtime/node-rtc.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { openMemoryPeerStore } from '../../src/store/index.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { fromBase64Url, toHex } from '../../src/util/bytes.js';

export interface WorkerConfig {
  url: string;
  identity: SecretIdentityJson;
  peer: PublicIdentityJson;
  /** base64url PSK of the pair. */
  psk: string;
  role: 'dial' | 'accept';
  backend: NodeRtcBackend;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
}

const config = JSON.parse(process.env.P2PTLS_WORKER ?? '') as WorkerConfig;
const identity = await Identity.importSecret(config.identity);
const peer = await PublicIdentity.import(config.peer);
const store = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
await store.put({ publicIdentity: peer, psk: fromBase64Url(config.psk) });
const rtc =
  config.backend === 'node-datachannel'
    ? await nodeRtc('node-datachannel', { bindAddress: '127.0.0.1' })
    : await nodeRtc('wrtc');
const host = await Host.start({
  identity,
  peers: store,
  signaling: new SignalingClient({ url: config.url, identity }),
  rtc,
  candidateFilter: loopbackOnly,
  aead: nodeCryptoAead,
  heartbeatIntervalMs: config.heartbeatIntervalMs,
  heartbeatTimeoutMs: config.heartbeatTimeoutMs,
});
console.log(`ready ${identity.peerId}`);

// accept() passes over a dial that failed (connect's retry comes as a new one).
const connection = config.role === 'dial' ? await host.connect(peer.peerId) : await host.accept();
console.log(`connected ${toHex(connection.sessionId)}`);
connection.on('message', (m) => {
  connection.send(m).catch(() => {});
});
void connection.closed.then((c) => console.log(`closed ${c.code} ${c.reason}`));
// Stay alive until killed.
setInterval(() => {}, 60_000);
