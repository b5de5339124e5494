/**
 * The WebRTC implementation is injected: browsers pass their own, Node passes @roamhq/wrtc (default) or
 * node-datachannel's polyfill. Nothing in src/transport imports a WebRTC package.
 */

/** The three constructors simple-peer needs. Browsers: `{ RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }`. */
export interface RtcImplementation {
  /** A short name for logs and benchmarks, e.g. "wrtc", "node-datachannel", "browser". */
  name: string;
  RTCPeerConnection: typeof RTCPeerConnection;
  RTCSessionDescription: typeof RTCSessionDescription;
  RTCIceCandidate: typeof RTCIceCandidate;
  /**
   * True for stacks that still gather and use host candidates under `iceTransportPolicy: 'relay'`
   * (node-datachannel). p2ptls refuses relay-only connections on them rather than leak the address.
   */
  ignoresRelayPolicy?: boolean;
}

/**
 * simple-peer assigns to `description.sdp` (for `sdpTransform`); node-datachannel's descriptions have a
 * getter-only `sdp`. This subclass returns plain `{ type, sdp }` objects, which every stack accepts.
 */
export function withPlainDescriptions(Base: typeof RTCPeerConnection): typeof RTCPeerConnection {
  type Describe = (this: RTCPeerConnection, options?: RTCOfferOptions) => Promise<RTCSessionDescriptionInit>;
  const plain = (original: Describe): Describe =>
    async function (this: RTCPeerConnection, options) {
      const d = await original.call(this, options);
      return { type: d.type, sdp: d.sdp ?? '' };
    };
  class PlainDescriptionPeerConnection extends Base {}
  const proto = PlainDescriptionPeerConnection.prototype as unknown as Record<
    'createOffer' | 'createAnswer',
    Describe
  >;
  const base = Base.prototype as unknown as Record<'createOffer' | 'createAnswer', Describe>;
  proto.createOffer = plain(base.createOffer);
  proto.createAnswer = plain(base.createAnswer);
  return PlainDescriptionPeerConnection;
}

/** Which addresses an ICE candidate may point to. Returns false to drop the candidate. */
export type CandidateFilter = (address: string, candidate: string) => boolean;

/** Keeps only loopback candidates: for tests and single-machine set-ups that must not touch any other address. */
export const loopbackOnly: CandidateFilter = (address) =>
  address === '127.0.0.1' || address === '::1' || address === 'localhost' || address.startsWith('127.');

/** A candidate line without the `a=` of an SDP attribute (node-datachannel hands its candidates out with it). */
export function candidateLine(candidate: string): string {
  return candidate.startsWith('a=') ? candidate.slice(2) : candidate;
}

/** The connection address of an SDP candidate line ("candidate:… udp <prio> <address> <port> typ …"). */
export function candidateAddress(candidate: string): string | undefined {
  const parts = candidateLine(candidate).split(/\s+/);
  return parts.length > 5 ? parts[4] : undefined;
}
