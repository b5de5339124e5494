/** WebRTC stacks for Node. Imported only by src/node.ts. */
import { createRequire } from 'node:module';
import { fail } from '../errors.js';
import { type RtcImplementation, withPlainDescriptions } from '../transport/rtc.js';

/** `wrtc`: @roamhq/wrtc (libwebrtc), the default. `node-datachannel`: libdatachannel's polyfill. */
export type NodeRtcBackend = 'wrtc' | 'node-datachannel';

const require = createRequire(import.meta.url);

export interface NodeRtcOptions {
  /**
   * node-datachannel only: the local address ICE binds to. libdatachannel gathers no loopback candidates
   * by default, so single-machine set-ups (and tests, which must stay on loopback) pass '127.0.0.1'.
   */
  bindAddress?: string;
}

/** Loads a Node WebRTC backend. Both ship prebuilt binaries inside their npm packages. */
export async function nodeRtc(
  backend: NodeRtcBackend = 'wrtc',
  options: NodeRtcOptions = {},
): Promise<RtcImplementation> {
  if (backend === 'wrtc') {
    const w = require('@roamhq/wrtc') as Omit<RtcImplementation, 'name'>;
    return {
      name: 'wrtc',
      RTCPeerConnection: w.RTCPeerConnection,
      RTCSessionDescription: w.RTCSessionDescription,
      RTCIceCandidate: w.RTCIceCandidate,
    };
  }
  if (backend === 'node-datachannel') {
    const p = (await import('node-datachannel/polyfill')) as unknown as Omit<RtcImplementation, 'name'>;
    const Plain = withPlainDescriptions(p.RTCPeerConnection);
    const bindAddress = options.bindAddress;
    const Bound = bindAddress
      ? (class extends Plain {
          constructor(config?: RTCConfiguration) {
            super({ ...config, bindAddress } as RTCConfiguration);
          }
        } as typeof RTCPeerConnection)
      : Plain;
    return {
      name: 'node-datachannel',
      // Measured: offers under relay policy still carry host candidates and ICE selects a host pair.
      ignoresRelayPolicy: true,
      RTCPeerConnection: Bound,
      RTCSessionDescription: p.RTCSessionDescription,
      RTCIceCandidate: p.RTCIceCandidate,
    };
  }
  throw fail('invalid_argument', `unknown WebRTC backend ${String(backend)}`);
}
