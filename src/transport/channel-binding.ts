/**
 * PROTOCOL.md §8: the p2ptls handshake is bound to the DTLS certificates of the WebRTC connection it
 * runs over. Each side reads the fingerprints from the offer and answer it made and applied; a signaling
 * server that substituted its own certificate (to sit in the middle of DTLS) makes the two sides' values
 * differ. Once DTLS is up, each side also compares the certificate the peer actually presented.
 */
import { fail } from '../errors.js';
import { utf8 } from '../util/bytes.js';

/** The first `a=fingerprint:` of an SDP, normalised to "<algorithm lower case> <HEX:HEX…>". */
export function sdpFingerprint(sdp: string): string {
  const m = /^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$/m.exec(sdp);
  if (!m) throw fail('malformed', 'SDP has no DTLS fingerprint');
  return `${m[1]!.toLowerCase()} ${m[2]!.toUpperCase()}`;
}

/** offer_binding = "p2ptls dtls offer\0" ‖ initiator fingerprint (UTF-8): what the ClientHello covers. */
export function dtlsOfferBinding(initiatorFingerprint: string): Uint8Array {
  return utf8(`p2ptls dtls offer\0${initiatorFingerprint}`);
}

/** channel_binding = "p2ptls dtls\0" ‖ initiator fingerprint ‖ "\0" ‖ responder fingerprint (UTF-8). */
export function dtlsChannelBinding(initiatorFingerprint: string, responderFingerprint: string): Uint8Array {
  return utf8(`p2ptls dtls\0${initiatorFingerprint}\0${responderFingerprint}`);
}
