export { dtlsChannelBinding, dtlsOfferBinding, sdpFingerprint } from './channel-binding.js';
export {
  type LinkStats,
  type LinkTimeline,
  PeerLink,
  type PeerLinkOptions,
  SLLP_CHANNEL_ID,
} from './peer-link.js';
export {
  type CandidateFilter,
  candidateAddress,
  loopbackOnly,
  type RtcImplementation,
  withPlainDescriptions,
} from './rtc.js';
