/**
 * `connect` calls whose dial lost a glare (PROTOCOL.md §3.7) and now wait for the connection the peer's
 * winning dial brings. Three things can come between:
 * - The winner's dial can fail before its link opens like any dial (node-datachannel's dialer does in
 *   about 1 set-up in 15 under CPU load, see `linkClosed` in dial.ts); its `connect` then dials again, and
 *   the waiters take that dial instead. Before, the first winning dial used the waiters up: the losing
 *   caller learnt of its failure at that dial's timeout (15 s), and the winner's second dial went to
 *   `incoming()`, so the two hosts ended with two connections (the glare test in dialing.test.ts failed 3
 *   of 12 runs beside two busy loops; 0 of 12 since).
 * - The winner's dial may already have been handed out (to `incoming()` or a mesh) when ours yields: its
 *   offer came, and was admitted, before our `connect` dialed. The waiters follow it
 *   ({@link GlareWaits.follow}) instead of waiting 15 s for a dial that never comes and then dialing a
 *   second connection (test/host/glare.test.ts). Our dial starting while the winner's is still being
 *   admitted is caught earlier: the host checks glare again when admission ends.
 * - The dial is being answered for them when their deadline passes: the deadline waits for its outcome, so
 *   a connection is never handed to a caller that already gave up.
 */
import { fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import { type Log, logger, shortId } from '../util/log.js';
import type { Connection } from './connection.js';
import { DIAL_REFUSALS } from './reconnecting.js';
import type { ConnectionRequest } from './request.js';

/** One losing `connect` call: settled once, by the peer's connection, a refusal, its deadline or close. */
interface Waiter {
  readonly resolve: (c: Connection) => void;
  readonly reject: (e: P2PTLSError) => void;
  /** `performance.now()` after which it fails with `timeout`. */
  readonly deadline: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The waiters of each peer: idle until a dial of that peer arrives, then `answering` while it is answered. */
interface PeerWaits {
  readonly waiters: Waiter[];
  /** True while a dial of the peer is being answered for these waiters. */
  answering: boolean;
}

export class GlareWaits {
  private readonly byPeer = new Map<PeerId, PeerWaits>();
  private closedWith: P2PTLSError | undefined;
  private readonly log: Log = logger('glare');

  /** A connection the peer's next dial brings, or `timeout` after `timeoutMs`. */
  wait(peerId: PeerId, timeoutMs: number): Promise<Connection> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<Connection>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, deadline: performance.now() + timeoutMs, timer: undefined };
      let waits = this.byPeer.get(peerId);
      if (!waits) {
        waits = { waiters: [], answering: false };
        this.byPeer.set(peerId, waits);
      }
      waits.waiters.push(waiter);
      // A waiter that joins while a dial is being answered is settled with it; its timer runs only while
      // nothing is (a connection must never be handed to a caller that already timed out).
      if (!waits.answering) this.arm(peerId, waiter);
      this.log('%s: a connect waits for the peer dial (%d waiting)', shortId(peerId), waits.waiters.length);
    });
  }

  /**
   * Answers `request` for the callers waiting for its peer, if any (false: nobody waits, or a dial of that
   * peer is already being answered for them). They get its connection; a refusal (`bad_binder`, …) fails
   * them; any other failure leaves them waiting for the peer's next dial until their deadline.
   */
  take(request: ConnectionRequest): boolean {
    // Verified only when someone waits: otherwise the request goes on to incoming() or a mesh.
    if (!this.idle(request.peerId)) return false;
    return this.follow(request.peerId, request.verify());
  }

  /**
   * The same for a dial of the peer that was handed out before anyone waited (to `incoming()` or a mesh):
   * the waiters get the connection it brings once whoever holds its request accepts it.
   */
  follow(peerId: PeerId, result: Promise<Connection>): boolean {
    const waits = this.idle(peerId);
    if (!waits) return false;
    this.track(peerId, waits, result);
    return true;
  }

  /** The waiters of `peerId`, if there are any and no dial is being answered for them. */
  private idle(peerId: PeerId): PeerWaits | undefined {
    const waits = this.byPeer.get(peerId);
    return waits && !waits.answering ? waits : undefined;
  }

  private track(peerId: PeerId, waits: PeerWaits, result: Promise<Connection>): void {
    waits.answering = true;
    for (const w of waits.waiters) clearTimeout(w.timer);
    this.log('%s: a peer dial answers for %d waiting', shortId(peerId), waits.waiters.length);
    result.then(
      (connection) => this.settle(peerId, (w) => w.resolve(connection)),
      (err: P2PTLSError) => {
        if (this.closedWith || DIAL_REFUSALS.has(err.code)) {
          this.settle(peerId, (w) => w.reject(err));
          return;
        }
        this.log('%s: the peer dial failed (%s): waiting for its next one', shortId(peerId), err.code);
        waits.answering = false;
        for (const w of waits.waiters) this.arm(peerId, w);
      },
    );
  }

  /** Fails every waiter with `error`, now and from now on. */
  close(error: P2PTLSError): void {
    this.closedWith = error;
    for (const peerId of [...this.byPeer.keys()]) {
      const waits = this.byPeer.get(peerId);
      // One being answered is settled by its dial, which the host fails as it closes.
      if (!waits?.answering) this.settle(peerId, (w) => w.reject(error));
    }
  }

  private arm(peerId: PeerId, waiter: Waiter): void {
    const left = Math.max(0, waiter.deadline - performance.now());
    waiter.timer = setTimeout(() => this.expire(peerId, waiter), left);
  }

  private expire(peerId: PeerId, waiter: Waiter): void {
    const waits = this.byPeer.get(peerId);
    const at = waits?.waiters.indexOf(waiter) ?? -1;
    if (!waits || waits.answering || at < 0) return;
    waits.waiters.splice(at, 1);
    if (waits.waiters.length === 0) this.byPeer.delete(peerId);
    waiter.reject(fail('timeout', `both peers dialed; ${peerId}'s dial did not bring a connection in time`));
  }

  private settle(peerId: PeerId, each: (w: Waiter) => void): void {
    const waits = this.byPeer.get(peerId);
    if (!waits) return;
    this.byPeer.delete(peerId);
    for (const w of waits.waiters) {
      clearTimeout(w.timer);
      each(w);
    }
  }
}
