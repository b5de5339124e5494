import { PeerLink, type PeerLinkOptions, peerConnectionConfig } from './peer-link.js';

/**
 * A spare is made this long after the dial that used the last one ended, not at once: making one takes
 * the event loop ~1.2 ms on @roamhq/wrtc (and its certificate a WebRTC thread a few ms more), which
 * would otherwise land on the connection's first exchanges (the peer's last handshake flight and first
 * WINDOW follow within a few ms on loopback).
 */
const SPARE_DELAY_MS = 20;

/**
 * Makes a host's WebRTC links, keeping one RTCPeerConnection made ahead of the next dial, incoming or
 * outgoing (PROTOCOL.md §8).
 *
 * Why: making the RTCPeerConnection is the slow start of every set-up. @roamhq/wrtc takes ~1.2 ms of the
 * event loop to construct one, and its first offer or answer then waits for the DTLS certificate that it
 * generates (createAnswer blocked 2.6 ms on a fresh one and under 0.2 ms on one made earlier). Over
 * spares, the responder's answer left 4.5 ms (median) after the offer arrived instead of 5.7, and the
 * initiator's offer 3.6 ms after connect() instead of 5.8 (bench:transport --only setup --setups 40).
 *
 * One spare at most, made before any dial and again only after a dial that took it has ended: a dialer
 * cannot make the host create more RTCPeerConnections than the dials it admits, and an unpaired one none
 * (admission before allocation, §8). Nothing is negotiated on a spare before a dial takes it (no offer,
 * no ICE gathering), so it does not go stale.
 *
 * A spare that is due is made at once when a link closes first (its RTCPeerConnection is still open then):
 * @roamhq/wrtc keeps its PeerConnectionFactory (WebRTC's threads, network monitor, audio device) only while
 * some RTCPeerConnection of the process is open, and makes a new one for the next. A connection closed
 * within {@link SPARE_DELAY_MS} of its dial's end therefore cost the next dial a new factory, and left the
 * old one's four threads behind until a garbage collection: 8 such dials in one process took it from 20
 * threads to 48, and a new RTCPeerConnection's first offer took 2.0 ms instead of 0.9. bench:transport's
 * set-ups close each connection at once: alternating with the version before, 7 runs each, p2ptls's set-up
 * took 19.7 ms (median of runs) instead of 20.7, and raw WebRTC's, in the same process, 16.9 instead of 18.1.
 */
export class LinkFactory {
  private spare: RTCPeerConnection | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly options: Omit<PeerLinkOptions, 'initiator' | 'peerConnection'>) {}

  /** A new link, over the spare RTCPeerConnection if there is one. */
  create(initiator: boolean): PeerLink {
    const peerConnection = this.spare;
    this.spare = undefined;
    try {
      return new PeerLink({
        ...this.options,
        initiator,
        ...(peerConnection ? { peerConnection } : {}),
        beforeClose: () => this.spareDueNow(),
      });
    } catch (err) {
      peerConnection?.close();
      throw err;
    }
  }

  /** Makes the spare now, if there is none. */
  prepare(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || this.spare) return;
    try {
      this.spare = new this.options.rtc.RTCPeerConnection(peerConnectionConfig(this.options));
    } catch {
      // Then the next link makes its own, and says why if it cannot either.
    }
  }

  /** Makes the spare a little later (see {@link SPARE_DELAY_MS}), if there is none by then. */
  prepareSoon(): void {
    if (this.closed || this.spare || this.timer) return;
    this.timer = setTimeout(() => this.prepare(), SPARE_DELAY_MS);
  }

  /** A link is closing: a spare that is due is made before its RTCPeerConnection closes (see above). */
  private spareDueNow(): void {
    if (this.timer !== undefined) this.prepare();
  }

  /** Closes the spare; no more are made. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.spare?.close();
    this.spare = undefined;
  }
}
