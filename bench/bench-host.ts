/**
 * A p2ptls host for a benchmark peer, in bench:transport's process or in bench/setup-peer.ts's: an
 * in-memory peer store that knows the other peer by a PSK, a signaling client that trusts it, loopback
 * candidates only, and the crypto the run asked for.
 */
import { webCryptoHandshake } from '../src/host/dial.js';
import { Host } from '../src/host/host.js';
import type { Identity, PublicIdentity } from '../src/identity/index.js';
import { webCryptoAead } from '../src/protocol/index.js';
import { nodeCryptoAead } from '../src/runtime/node-aead.js';
import { nodeHandshakeCrypto } from '../src/runtime/node-handshake.js';
import { SignalingClient } from '../src/signaling/client.js';
import { openMemoryPeerStore } from '../src/store/index.js';
import { loopbackOnly, type RtcImplementation } from '../src/transport/rtc.js';

/** Records and handshakes through the browsers' WebCrypto, or through node:crypto (Node's default). */
export function benchCrypto(webcrypto: boolean) {
  return webcrypto
    ? { aead: webCryptoAead, handshakeCrypto: webCryptoHandshake }
    : { aead: nodeCryptoAead, handshakeCrypto: nodeHandshakeCrypto };
}

/** A host for `me` that knows `other` by `psk`, with its signaling client. */
export async function startBenchHost(options: {
  url: string;
  rtc: RtcImplementation;
  me: Identity;
  other: PublicIdentity;
  psk: Uint8Array;
  webcrypto: boolean;
}) {
  const { url, rtc, me, other, psk } = options;
  const store = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
  await store.put({ publicIdentity: other.export(), psk });
  const signaling = new SignalingClient({ url, identity: me });
  signaling.on('rejected', (r) =>
    console.error('signaling rejected', r.event, r.error.code, r.error.message),
  );
  signaling.trustPeer(other);
  const host = await Host.start({
    identity: me,
    peers: store,
    signaling,
    rtc,
    candidateFilter: loopbackOnly,
    ...benchCrypto(options.webcrypto),
  });
  return { host, signaling };
}
