/**
 * The connection pool of a mesh: one slot per member with its p2ptls connection, opened lazily, capped
 * (`maxConnections`, the least recently used idle one makes room), redialed with capped backoff after a
 * failure, closed when the member leaves; and the per-member counters of {@link MeshPeerStats}.
 *
 * Who dials: for each pair, only the peer with the lower peerId (the glare winner of PROTOCOL.md §3.7)
 * ever dials; the other asks it to, through signaling (PROTOCOL.md §12.1), when it needs the connection
 * first. One dialer per pair means one connection per pair, so no message is ever sent on a duplicate
 * that is then dropped.
 */
import { z } from 'zod';
import { fail, type P2PTLSError } from '../errors.js';
import type { Connection } from '../host/connection.js';
import type { ConnectionStats } from '../host/connection-types.js';
import { DIAL_REFUSALS, isDeliberateClose } from '../host/reconnecting.js';
import type { ConnectionRequest } from '../host/request.js';
import type { PeerList } from '../host/types.js';
import type { PeerId } from '../identity/peer-id.js';
import { glareWinner } from '../protocol/handshake.js';
import type { CloseInfo } from '../protocol/session.js';
import type { SignalingClient } from '../signaling/client.js';
import { RoomNameSchema } from '../signaling/messages.js';
import { logger, shortId } from '../util/log.js';

const debug = logger('mesh:pool');

/** Close codes the mesh uses on its connections (application range: a peer does not redial them). */
export const MeshCloseCode = {
  /** The member left the room. */
  LEFT: 4001,
  /** This side closed its mesh. */
  CLOSED: 4002,
  /** Closed to stay under `maxConnections`; reopened when needed. */
  EVICTED: 4003,
  /** Replaced by a newer connection to the same member. */
  REPLACED: 4004,
} as const;

/** What a mesh needs from its host (a `Host` is one). */
export interface MeshHost {
  readonly peerId: PeerId;
  readonly signaling: SignalingClient;
  readonly peers: PeerList;
  connect(peerId: PeerId): Promise<Connection>;
  /**
   * Registers a function that may take incoming requests before `incoming()` sees them, and what to do
   * when the host closes; returns the function that releases the claim.
   */
  claimIncoming(claim: (request: ConnectionRequest) => boolean, close: () => Promise<void>): () => void;
}

/** Statistics of the mesh link to one member. */
export interface MeshPeerStats {
  peerId: PeerId;
  /** Whether a connection is open now. */
  connected: boolean;
  /** Connections that replaced a failed one. */
  reconnects: number;
  /** Mesh frames (messages, chunks, control) and their bytes, both ways, over every connection so far. */
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Frames from this member that were refused (see the `error` event). */
  framesRefused: number;
  /** Frames that arrived for an operation already over here (sent before the sender learnt it failed). */
  framesStale: number;
  /** The open connection's own statistics (RTT, candidate types, …). */
  connection?: ConnectionStats;
}

/** What the pool needs from its mesh. */
export interface PoolContext {
  readonly self: PeerId;
  readonly room: string;
  readonly host: MeshHost;
  isOpen(): boolean;
  isMember(peerId: PeerId): boolean;
  /** A message arrived on a member's connection. */
  received(from: PeerId, bytes: Uint8Array): void;
  /** A member's current connection closed (for whatever reason). */
  closed(peerId: PeerId, info: CloseInfo): void;
  /** A connection replaced one that had failed. */
  reconnected(peerId: PeerId): void;
}

export interface PoolOptions {
  maxConnections: number;
  connectTimeoutMs: number;
  reconnectDelayMs: number;
  maxReconnectDelayMs: number;
}

/** Asks the peer that dials for this pair to dial now (carried by signaling, signed by the sender). */
const DialMe = z
  .object({ p2ptlsMesh: z.literal(1), kind: z.literal('dial-me'), room: RoomNameSchema })
  .strict();

/** How often a member that needs a connection repeats its dial-me. */
const DIAL_ME_INTERVAL_MS = 2_000;
/** A connection younger than this is not replaced because of a dial-me (which may predate it). */
const FRESH_CONNECTION_MS = 5_000;

interface Slot {
  peerId: PeerId;
  conn: Connection | undefined;
  connectedAt: number;
  dialing: Promise<Connection> | undefined;
  waiters: { resolve: (c: Connection) => void; reject: (e: P2PTLSError) => void }[];
  dialMeTimer: ReturnType<typeof setInterval> | undefined;
  dialMeDeadline: ReturnType<typeof setTimeout> | undefined;
  reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** A failed dial waiting to be tried again ({@link ConnectionPool.dialUntilDeadline}); ended early on close. */
  dialRetry: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined;
  /** The last connection failed (not closed on purpose): the next one counts as a reconnect. */
  lost: boolean;
  lastUsed: number;
  /** Sends not yet queued on the transport, and operations using this link: never evicted while > 0. */
  busy: number;
  counters: LinkCounters;
}

/** The counters of {@link MeshPeerStats}, kept per member for as long as the mesh lives. */
type LinkCounters = Pick<
  MeshPeerStats,
  | 'reconnects'
  | 'framesSent'
  | 'framesReceived'
  | 'bytesSent'
  | 'bytesReceived'
  | 'framesRefused'
  | 'framesStale'
>;

const zeroCounters = (): LinkCounters => ({
  reconnects: 0,
  framesSent: 0,
  framesReceived: 0,
  bytesSent: 0,
  bytesReceived: 0,
  framesRefused: 0,
  framesStale: 0,
});

export class ConnectionPool {
  private readonly slots = new Map<PeerId, Slot>();

  constructor(
    private readonly ctx: PoolContext,
    private readonly opts: PoolOptions,
  ) {}

  /** Statistics of the link to one member (zeros if never connected). */
  async peerStats(peerId: PeerId): Promise<MeshPeerStats> {
    const s = this.slots.get(peerId);
    const conn = s?.conn?.isOpen ? s.conn : undefined;
    const connection = conn ? await conn.stats().catch(() => undefined) : undefined;
    return {
      peerId,
      connected: conn !== undefined,
      ...(s?.counters ?? zeroCounters()),
      ...(connection ? { connection } : {}),
    };
  }

  /** Counts a frame from a member that was refused, or that came for an operation already over. */
  count(peerId: PeerId, what: 'framesRefused' | 'framesStale'): void {
    this.slot(peerId).counters[what]++;
  }

  /** Keeps the link to a member from being evicted until the returned function is called. */
  pin(peerId: PeerId): () => void {
    const slot = this.slot(peerId);
    slot.busy++;
    return () => {
      slot.busy--;
    };
  }

  /** Whether a connection to the member is open now. */
  isConnected(peerId: PeerId): boolean {
    return this.slots.get(peerId)?.conn?.isOpen === true;
  }

  /** Checks that a connected member is alive ({@link Connection.probe}); a dead one's connection closes. */
  probe(peerId: PeerId): void {
    void this.slots.get(peerId)?.conn?.probe();
  }

  /** How many connections are open now (never more than `maxConnections`). */
  get openConnections(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.conn?.isOpen) n++;
    return n;
  }

  /** The member left: waits for its connection fail with `error`, and its connection closes (4001). */
  memberGone(peerId: PeerId, error: P2PTLSError): void {
    const slot = this.slots.get(peerId);
    if (!slot) return;
    this.stopWaiting(slot, error);
    const conn = slot.conn;
    slot.conn = undefined;
    slot.lost = false;
    if (conn?.isOpen) void conn.close(MeshCloseCode.LEFT, 'member left');
  }

  /** Closes every connection (4002) and fails every wait; resolves when they are closed. */
  close(error: P2PTLSError): Promise<unknown> {
    const closing: Promise<unknown>[] = [];
    for (const slot of this.slots.values()) {
      this.stopWaiting(slot, error);
      if (slot.conn?.isOpen) closing.push(slot.conn.close(MeshCloseCode.CLOSED, 'mesh closed'));
      slot.conn = undefined;
    }
    return Promise.all(closing);
  }

  private slot(peerId: PeerId): Slot {
    let s = this.slots.get(peerId);
    if (!s) {
      s = {
        peerId,
        conn: undefined,
        connectedAt: 0,
        dialing: undefined,
        waiters: [],
        dialMeTimer: undefined,
        dialMeDeadline: undefined,
        reconnectTimer: undefined,
        dialRetry: undefined,
        lost: false,
        lastUsed: 0,
        busy: 0,
        counters: zeroCounters(),
      };
      this.slots.set(peerId, s);
    }
    return s;
  }

  private isDialer(peerId: PeerId): boolean {
    return glareWinner(this.ctx.self, peerId) === this.ctx.self;
  }

  /** Takes an incoming dial from a member for which the member is the dialer. */
  claim(request: ConnectionRequest): boolean {
    const from = request.peerId;
    if (!this.ctx.isOpen() || !this.ctx.isMember(from) || this.isDialer(from)) return false;
    request.verify().then(
      (conn) => this.adopt(this.slot(from), conn),
      () => {},
    );
    return true;
  }

  onSignal(from: PeerId, data: unknown): void {
    const parsed = DialMe.safeParse(data);
    if (!parsed.success || parsed.data.room !== this.ctx.room) return;
    if (!this.ctx.isOpen() || !this.ctx.isMember(from) || !this.isDialer(from)) return;
    const slot = this.slot(from);
    if (slot.conn?.isOpen) {
      // The member has no connection to us: ours is a dead one it already gave up on.
      if (Date.now() - slot.connectedAt < FRESH_CONNECTION_MS) return;
      const stale = slot.conn;
      slot.conn = undefined;
      void stale.close(MeshCloseCode.REPLACED, 'replaced');
    }
    this.dial(slot).catch(() => {});
  }

  /** The open connection to a member, opening one if needed. */
  private async connection(peerId: PeerId): Promise<Connection> {
    if (!this.ctx.isOpen()) throw fail('closed', 'mesh closed');
    if (!this.ctx.isMember(peerId))
      throw fail('mesh_not_member', `${peerId} is not a member of ${this.ctx.room}`);
    const slot = this.slot(peerId);
    slot.lastUsed = Date.now();
    if (slot.conn?.isOpen) return slot.conn;
    if (!slot.dialing && slot.waiters.length === 0) this.makeRoom(slot);
    if (this.isDialer(peerId)) return this.dial(slot);
    return new Promise<Connection>((resolve, reject) => {
      slot.waiters.push({ resolve, reject });
      if (!slot.dialMeTimer) {
        const ask = () => {
          this.ctx.host.signaling
            .sendSignal(peerId, { p2ptlsMesh: 1, kind: 'dial-me', room: this.ctx.room })
            .catch(() => {});
        };
        ask();
        slot.dialMeTimer = setInterval(ask, DIAL_ME_INTERVAL_MS);
        slot.dialMeDeadline = setTimeout(
          () =>
            this.stopWaiting(
              slot,
              fail('timeout', `${peerId} did not connect within ${this.opts.connectTimeoutMs} ms`),
            ),
          this.opts.connectTimeoutMs,
        );
      }
    });
  }

  private stopWaiting(slot: Slot, error?: P2PTLSError, conn?: Connection): void {
    if (slot.dialMeTimer) clearInterval(slot.dialMeTimer);
    if (slot.dialMeDeadline) clearTimeout(slot.dialMeDeadline);
    slot.dialMeTimer = undefined;
    slot.dialMeDeadline = undefined;
    if (slot.reconnectTimer && error) {
      clearTimeout(slot.reconnectTimer);
      slot.reconnectTimer = undefined;
    }
    if (slot.dialRetry && error) {
      clearTimeout(slot.dialRetry.timer);
      slot.dialRetry.wake();
      slot.dialRetry = undefined;
    }
    for (const w of slot.waiters.splice(0)) {
      if (conn) w.resolve(conn);
      else w.reject(error ?? fail('closed', 'mesh closed'));
    }
  }

  private dial(slot: Slot): Promise<Connection> {
    if (slot.conn?.isOpen) return Promise.resolve(slot.conn);
    slot.dialing ??= this.dialUntilDeadline(slot).finally(() => {
      slot.dialing = undefined;
    });
    return slot.dialing;
  }

  /**
   * Dials a member until it answers, for at most `connectTimeoutMs`, with capped backoff between tries.
   * A failed dial is not a lost member: the first operation of a mesh opens every ring link at once, and
   * a dial that failed then (a refused or timed-out WebRTC set-up on a loaded machine) made an elastic
   * operation go on without a member that was alive and in the room, which then failed with
   * `mesh_member_left` (a clean-clone CI run, test/mesh/browser.test.ts). Nothing was sent on a link
   * that never opened, so trying again loses nothing. Stops at once when the member refuses us
   * (DIAL_REFUSALS), leaves the room, or the mesh closes.
   */
  private async dialUntilDeadline(slot: Slot): Promise<Connection> {
    const deadline = Date.now() + this.opts.connectTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const conn = await this.ctx.host.connect(slot.peerId);
        if (!this.ctx.isOpen() || !this.ctx.isMember(slot.peerId)) {
          void conn.close(MeshCloseCode.CLOSED, 'mesh closed');
          throw this.goneError(slot.peerId);
        }
        this.adopt(slot, conn);
        return conn;
      } catch (err) {
        const error = err as P2PTLSError;
        const wait = this.backoff(attempt);
        if (!this.ctx.isOpen() || !this.ctx.isMember(slot.peerId)) throw this.goneError(slot.peerId);
        if (DIAL_REFUSALS.has(error.code) || Date.now() + wait > deadline) throw error;
        debug(
          '%s: dial %d to %s failed (%s); again in %d ms',
          this.ctx.room,
          attempt,
          shortId(slot.peerId),
          error.message,
          wait,
        );
        await new Promise<void>((wake) => {
          slot.dialRetry = { timer: setTimeout(wake, wait), wake };
        });
        slot.dialRetry = undefined;
      }
    }
  }

  private goneError(peerId: PeerId): P2PTLSError {
    return !this.ctx.isOpen()
      ? fail('closed', 'mesh closed')
      : fail('mesh_not_member', `${peerId} is no longer a member of ${this.ctx.room}`);
  }

  /** Makes the connection the member's current one and starts reading it. */
  private adopt(slot: Slot, conn: Connection): void {
    if (!conn.isOpen) return;
    if (!this.ctx.isOpen() || !this.ctx.isMember(slot.peerId)) {
      void conn.close(MeshCloseCode.LEFT, 'not a member');
      return;
    }
    const old = slot.conn;
    if (old && old !== conn && old.isOpen) {
      slot.conn = undefined;
      void old.close(MeshCloseCode.REPLACED, 'replaced');
    }
    slot.conn = conn;
    slot.connectedAt = Date.now();
    slot.lastUsed = Date.now();
    if (slot.reconnectTimer) clearTimeout(slot.reconnectTimer);
    slot.reconnectTimer = undefined;
    if (slot.lost) {
      slot.lost = false;
      slot.counters.reconnects++;
      this.ctx.reconnected(slot.peerId);
    }
    conn.on('close', (info) => this.onClose(slot, conn, info));
    void this.read(slot, conn);
    this.stopWaiting(slot, undefined, conn);
    if (this.openConnections > this.opts.maxConnections && !this.evictOne(slot)) {
      // Every other link is busy: this one cannot stay (its dialer sees a deliberate close).
      slot.conn = undefined;
      void conn.close(MeshCloseCode.EVICTED, 'connection limit');
    }
  }

  private async read(slot: Slot, conn: Connection): Promise<void> {
    try {
      for await (const bytes of conn.messages()) {
        slot.counters.framesReceived++;
        slot.counters.bytesReceived += bytes.length;
        this.ctx.received(slot.peerId, bytes);
      }
    } catch {
      // The connection ended with an error (truncated, timeout…): its close event (onClose) handles it.
    }
  }

  private onClose(slot: Slot, conn: Connection, info: CloseInfo): void {
    if (slot.conn !== conn) return;
    slot.conn = undefined;
    this.ctx.closed(slot.peerId, info);
    if (!this.ctx.isOpen() || !this.ctx.isMember(slot.peerId) || isDeliberateClose(info)) return;
    slot.lost = true;
    if (this.isDialer(slot.peerId)) this.redial(slot, 1);
  }

  /** Keeps a member's failed connection coming back, with capped backoff, while it is in the room. */
  private redial(slot: Slot, attempt: number): void {
    slot.reconnectTimer = setTimeout(() => {
      slot.reconnectTimer = undefined;
      if (!this.ctx.isOpen() || !this.ctx.isMember(slot.peerId) || slot.conn?.isOpen) return;
      this.dial(slot).catch((err: P2PTLSError) => {
        if (!DIAL_REFUSALS.has(err.code) && !slot.conn?.isOpen) this.redial(slot, attempt + 1);
      });
    }, this.backoff(attempt));
  }

  /** The wait before try `attempt` (1, 2, …) of a dial: doubling from `reconnectDelayMs`, capped. */
  private backoff(attempt: number): number {
    return Math.min(this.opts.maxReconnectDelayMs, this.opts.reconnectDelayMs * 2 ** (attempt - 1));
  }

  /** Closes the least recently used idle connection if the cap is reached. */
  private makeRoom(keep: Slot): void {
    if (this.openConnections < this.opts.maxConnections) return;
    if (!this.evictOne(keep)) {
      throw fail(
        'mesh_connection_limit',
        `all ${this.opts.maxConnections} mesh connections are busy; raise maxConnections`,
      );
    }
  }

  private evictOne(keep: Slot): boolean {
    let victim: Slot | undefined;
    for (const s of this.slots.values()) {
      if (s === keep || !s.conn?.isOpen || s.busy > 0) continue;
      if (!victim || s.lastUsed < victim.lastUsed) victim = s;
    }
    if (!victim) return false;
    const conn = victim.conn!;
    victim.conn = undefined;
    void conn.close(MeshCloseCode.EVICTED, 'evicted');
    return true;
  }

  /** Sends a mesh frame to a member, connecting first if needed; resolves once queued on the transport. */
  async send(peerId: PeerId, frame: Uint8Array): Promise<void> {
    const slot = this.slot(peerId);
    slot.busy++;
    try {
      const conn = await this.connection(peerId);
      slot.counters.framesSent++;
      slot.counters.bytesSent += frame.length;
      await conn.send(frame);
    } finally {
      slot.busy--;
      slot.lastUsed = Date.now();
    }
  }

  /** Sends a frame without waiting: over the open connection, else by opening one in the background. */
  post(peerId: PeerId, frame: Uint8Array): void {
    if (!this.ctx.isMember(peerId)) return;
    this.send(peerId, frame).catch(() => {});
  }
}
