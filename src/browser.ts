/**
 * Browser entry point of p2ptls: native RTCPeerConnection, IndexedDB store, WebCrypto.
 */
export * from './index.js';
export * from './store/browser.js';

import { Host, type HostOptions } from './host/host.js';
import type { RtcImplementation } from './transport/rtc.js';

/** The browser's own WebRTC constructors. */
export function browserRtc(): RtcImplementation {
  return {
    name: 'browser',
    RTCPeerConnection: globalThis.RTCPeerConnection,
    RTCSessionDescription: globalThis.RTCSessionDescription,
    RTCIceCandidate: globalThis.RTCIceCandidate,
  };
}

/** Starts a {@link Host} with the browser's RTCPeerConnection and WebCrypto. */
export function startBrowserHost(
  options: Omit<HostOptions, 'rtc'> & Partial<Pick<HostOptions, 'rtc'>>,
): Promise<Host> {
  return Host.start({ ...options, rtc: options.rtc ?? browserRtc() });
}
