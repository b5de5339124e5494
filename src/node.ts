/**
 * Node entry point of p2ptls. Runtime-specific parts (WebRTC implementation, LevelDB store, node:crypto
 * AEAD and handshake crypto) are wired here; everything else is shared with the browser build.
 */
export * from './index.js';
export { nodeCryptoAead } from './runtime/node-aead.js';
export { nodeHandshakeCrypto } from './runtime/node-handshake.js';
export { type NodeRtcBackend, type NodeRtcOptions, nodeRtc } from './runtime/node-rtc.js';
export * from './store/node.js';

import { Host, type HostOptions } from './host/host.js';
import { nodeCryptoAead } from './runtime/node-aead.js';
import { nodeHandshakeCrypto } from './runtime/node-handshake.js';
import { type NodeRtcBackend, nodeRtc } from './runtime/node-rtc.js';

/**
 * Starts a {@link Host} with Node defaults: @roamhq/wrtc (or `backend: 'node-datachannel'`), and
 * node:crypto for AES-GCM and for the handshake's ECDHE and signatures. Everything in `options` overrides
 * the defaults.
 */
export async function startNodeHost(
  options: Omit<HostOptions, 'rtc'> & Partial<Pick<HostOptions, 'rtc'>> & { backend?: NodeRtcBackend },
): Promise<Host> {
  const { backend, ...rest } = options;
  return Host.start({
    aead: nodeCryptoAead,
    handshakeCrypto: nodeHandshakeCrypto,
    ...rest,
    rtc: rest.rtc ?? (await nodeRtc(backend)),
  });
}

export type {
  SignalingLimits,
  SignalingServerHandle,
  SignalingServerOptions,
} from '../signaling-server/server.js';

/**
 * Starts a signaling server in this process (the same server as `npm run signaling` and `p2ptls
 * signal`) and resolves once it listens. Loaded on first call: socket.io, pino and the Redis adapter
 * would otherwise slow down every `import 'p2ptls/node'`.
 */
export async function startSignalingServer(
  options: import('../signaling-server/server.js').SignalingServerOptions = {},
): Promise<import('../signaling-server/server.js').SignalingServerHandle> {
  const server = await import('../signaling-server/server.js');
  return server.startSignalingServer(options);
}
