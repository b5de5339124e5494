/**
 * A mesh: the paired peers present in one signaling room, with a p2ptls connection to each one that is
 * needed (opened lazily, capped, kept up, closed when the member leaves), application messages, and the
 * collective operations of data-parallel training over TCP mode (docs/MESH.md, PROTOCOL.md §12).
 *
 * Who dials: for each pair, only the peer with the lower peerId (the glare winner of PROTOCOL.md §3.7)
 * ever dials; the other asks it to, through signaling, when it needs the connection first. One dialer
 * per pair means one connection per pair, so no message is ever sent on a duplicate that is then
 * dropped.
 */
import { z } from 'zod';
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { Connection, ConnectionStats } from '../host/connection.js';
import { DIAL_REFUSALS, isDeliberateClose } from '../host/reconnecting.js';
import type { ConnectionRequest } from '../host/request.js';
import type { PeerList } from '../host/types.js';
import type { PeerId } from '../identity/peer-id.js';
import { glareWinner } from '../protocol/handshake.js';
import type { CloseInfo } from '../protocol/session.js';
import type { SignalingClient } from '../signaling/client.js';
import { RoomNameSchema } from '../signaling/messages.js';
import { utf8 } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { CollectiveOp, memberLost, type OpContext } from './collective.js';
import { mod, ringOrder } from './ring.js';
import {
  type AbortFrame,
  decodeFrame,
  encodeAbort,
  encodeData,
  FrameType,
  type MeshFrame,
  OpKind,
  type ReadyFrame,
} from './wire.js';

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

/** Tunables of a {@link Mesh}. */
export interface MeshOptions {
  /** Most connections open at once (default 64); the least recently used idle one makes room. */
  maxConnections?: number;
  /** Elements per tensor chunk (default 16 000: 64 000 bytes, one record of a WebRTC connection). */
  chunkElements?: number;
  /** Chunks of one operation queued on a connection at once (default 8). */
  window?: number;
  /** How long `send` or an operation waits for a member's connection (default 30 000 ms). */
  connectTimeoutMs?: number;
  /** First delay before redialing a member whose connection failed (default 250 ms, doubling). */
  reconnectDelayMs?: number;
  /** Cap of the redial backoff (default 5 000 ms). */
  maxReconnectDelayMs?: number;
}

/** Per-operation options. */
export interface CollectiveOptions {
  /** Fail with `timeout` (on every member) if the operation has not finished by then. Default: no limit. */
  timeoutMs?: number;
}

/** Events of a {@link Mesh}. */
export interface MeshEvents {
  /** A paired peer entered the room. */
  joined: { peerId: PeerId };
  /** A member left the room; its connection is closed and operations that included it fail. */
  left: { peerId: PeerId };
  /** The connection to a member failed and a new one replaced it. */
  reconnected: { peerId: PeerId };
  /** Bytes a member sent with `send` or `broadcast`. */
  message: { from: PeerId; data: Uint8Array };
  /** A member sent a frame that was refused (malformed, out of order, for no operation). */
  error: { peerId: PeerId; error: P2PTLSError };
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

/** Outcome of {@link Mesh.broadcast}: who got the message queued, and who could not be reached. */
export interface BroadcastResult {
  sent: PeerId[];
  failed: { peerId: PeerId; error: P2PTLSError }[];
}

/** What a mesh needs from its host (see `Host.joinMesh`). */
export interface MeshHost {
  readonly peerId: PeerId;
  readonly signaling: SignalingClient;
  readonly peers: PeerList;
  connect(peerId: PeerId): Promise<Connection>;
  /** Registers a function that may take incoming requests before `incoming()` sees them. */
  claimIncoming(claim: (request: ConnectionRequest) => boolean): () => void;
}

/** Asks the peer that dials for this pair to dial now (carried by signaling, signed by the sender). */
const DialMe = z
  .object({ p2ptlsMesh: z.literal(1), kind: z.literal('dial-me'), room: RoomNameSchema })
  .strict();

/** READY/ABORT frames for operations not started here yet, kept at most this many. */
const MAX_EARLY_FRAMES = 256;
/** How far ahead of ours a peer's operation may be. */
const MAX_SEQ_AHEAD = 1024;
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

/**
 * The paired peers of one signaling room, connected as needed. Get one with `host.joinMesh(room)`.
 *
 * Collective operations (`allReduce`, `broadcastTensor`, `barrier`) must be called by every member in
 * the same order, like MPI or torch.distributed collectives; each runs over the members present when
 * it starts (sorted peerIds give the ring), and fails on every member with a typed error — never hangs —
 * when a member leaves before it is done.
 */
export class Mesh extends TypedEmitter<MeshEvents> {
  readonly room: string;
  private readonly self: PeerId;
  private readonly memberSet = new Set<PeerId>();
  private readonly slots = new Map<PeerId, Slot>();
  private readonly opts: Required<MeshOptions>;
  private readonly cleanups: (() => void)[] = [];
  private membership: Promise<void> = Promise.resolve();
  private closed = false;
  // Collectives run one after another, in call order: the n-th call is operation n on every member.
  private nextSeq = 0;
  private startedSeq = -1;
  private active: CollectiveOp | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private early: { from: PeerId; frame: ReadyFrame | AbortFrame }[] = [];
  private readonly abortsSeen = new Set<number>();

  private constructor(
    private readonly host: MeshHost,
    room: string,
    options: MeshOptions,
  ) {
    super();
    this.room = room;
    this.self = host.peerId;
    this.opts = {
      maxConnections: options.maxConnections ?? 64,
      chunkElements: options.chunkElements ?? 16_000,
      window: options.window ?? 8,
      connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
      reconnectDelayMs: options.reconnectDelayMs ?? 250,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 5_000,
    };
    if (!(this.opts.maxConnections >= 2)) throw fail('invalid_argument', 'maxConnections must be at least 2');
    if (!(this.opts.chunkElements >= 1 && this.opts.chunkElements <= 4 * 1024 * 1024)) {
      throw fail('invalid_argument', 'chunkElements must be between 1 and 4 Mi');
    }
    if (!(this.opts.window >= 1)) throw fail('invalid_argument', 'window must be at least 1');
  }

  /** @internal Use `host.joinMesh(room)`. */
  static async join(host: MeshHost, room: string, options: MeshOptions = {}): Promise<Mesh> {
    if (!RoomNameSchema.safeParse(room).success) throw fail('invalid_argument', `not a room name: ${room}`);
    const mesh = new Mesh(host, room, options);
    const sig = host.signaling;
    mesh.cleanups.push(
      host.claimIncoming((request) => mesh.claim(request)),
      sig.on('room:joined', ({ room: r, peerId }) => {
        if (r === room) mesh.enqueueMembership(() => mesh.addMember(peerId));
      }),
      sig.on('room:left', ({ room: r, peerId }) => {
        if (r === room) mesh.enqueueMembership(async () => mesh.removeMember(peerId));
      }),
      // After a signaling reconnection the client re-joins by itself; what changed meanwhile is unknown.
      sig.on('authenticated', () => mesh.enqueueMembership(() => mesh.refresh())),
      sig.on('signal', ({ from, data }) => mesh.onSignal(from, data)),
    );
    try {
      // Inside the membership queue: room events that arrive meanwhile are newer than the member list,
      // so they must be applied after it, not before.
      await mesh.enqueueMembership(async () => mesh.sync(await sig.joinRoom(room)));
    } catch (err) {
      await mesh.close();
      throw asP2PTLSError(err, 'closed');
    }
    return mesh;
  }

  /** Our own peerId. */
  get peerId(): PeerId {
    return this.self;
  }

  /** The other members: paired peers present in the room, sorted. */
  get members(): PeerId[] {
    return [...this.memberSet].sort();
  }

  /** Members including us, in ring order: what the next collective operation runs over. */
  get ring(): PeerId[] {
    return ringOrder([this.self, ...this.memberSet]);
  }

  /** Whether the mesh is open. */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** Resolves once the mesh counts at least `count` members including us; rejects with `timeout`. */
  waitForMembers(count: number, timeoutMs = 60_000): Promise<void> {
    if (this.memberSet.size + 1 >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.memberSet.size + 1 < count) return;
        done();
        resolve();
      };
      const off = this.on('joined', check);
      const timer = setTimeout(() => {
        done();
        reject(fail('timeout', `${this.memberSet.size + 1} of ${count} members after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        off();
        clearTimeout(timer);
      };
    });
  }

  /** Sends bytes to one member in TCP mode, connecting first if needed; resolves once queued. */
  async send(peerId: PeerId, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? utf8(data) : data;
    if (!this.memberSet.has(peerId)) {
      throw fail('mesh_not_member', `${peerId} is not a member of mesh ${this.room}`);
    }
    await this.sendFrame(peerId, encodeData(bytes));
  }

  /** Sends bytes to every member; resolves with who has it queued and who could not be reached. */
  async broadcast(data: Uint8Array | string): Promise<BroadcastResult> {
    const frame = encodeData(typeof data === 'string' ? utf8(data) : data);
    const members = this.members;
    const outcomes = await Promise.allSettled(members.map((p) => this.sendFrame(p, frame)));
    const result: BroadcastResult = { sent: [], failed: [] };
    outcomes.forEach((o, i) => {
      const peerId = members[i]!;
      if (o.status === 'fulfilled') result.sent.push(peerId);
      else result.failed.push({ peerId, error: asP2PTLSError(o.reason, 'closed') });
    });
    return result;
  }

  /**
   * Ring all-reduce, in place: every member's `tensor` becomes the element-wise sum (or mean) over all
   * members. Reduce-scatter then all-gather, streamed in chunks, so each member sends and receives
   * 2(N−1)/N of the tensor and holds no copy of it. Every member must pass a tensor of the same length.
   * On failure the tensor holds partial sums.
   */
  async allReduce(
    tensor: Float32Array,
    op: 'sum' | 'mean' = 'sum',
    options: CollectiveOptions = {},
  ): Promise<Float32Array> {
    if (!(tensor instanceof Float32Array)) throw fail('invalid_argument', 'allReduce takes a Float32Array');
    if (op !== 'sum' && op !== 'mean') throw fail('invalid_argument', `unknown reduction ${String(op)}`);
    const ring = await this.run(OpKind.ALL_REDUCE, tensor, op === 'mean' ? 1 : 0, options);
    if (op === 'mean') {
      const inv = 1 / ring.length;
      for (let i = 0; i < tensor.length; i++) tensor[i]! *= inv;
    }
    return tensor;
  }

  /**
   * Copies `root`'s tensor into every member's `tensor` (same length everywhere), pipelined along the
   * ring from the root. Resolves with `tensor`.
   */
  async broadcastTensor(
    root: PeerId,
    tensor: Float32Array,
    options: CollectiveOptions = {},
  ): Promise<Float32Array> {
    if (!(tensor instanceof Float32Array))
      throw fail('invalid_argument', 'broadcastTensor takes a Float32Array');
    await this.run(OpKind.BROADCAST, tensor, root, options);
    return tensor;
  }

  /** Resolves once every member has entered this barrier. */
  async barrier(options: CollectiveOptions = {}): Promise<void> {
    await this.run(OpKind.BARRIER, undefined, 0, options);
  }

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

  /** Statistics of every member's link. */
  stats(): Promise<MeshPeerStats[]> {
    return Promise.all(this.members.map((p) => this.peerStats(p)));
  }

  /** How many connections are open now (never more than `maxConnections`). */
  get openConnections(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.conn?.isOpen) n++;
    return n;
  }

  /** Leaves the room, closes every mesh connection and fails pending operations with `closed`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.cleanups.splice(0)) off();
    this.active?.fail(fail('closed', 'mesh closed'));
    const closing: Promise<unknown>[] = [];
    for (const slot of this.slots.values()) {
      this.stopWaiting(slot, fail('closed', 'mesh closed'));
      if (slot.conn?.isOpen) closing.push(slot.conn.close(MeshCloseCode.CLOSED, 'mesh closed'));
      slot.conn = undefined;
    }
    // leaveRoom forgets the room at once (no re-join after a reconnection) but would wait for a signaling
    // connection that may never come back: only wait for the answer of a live one.
    const leaving = this.host.signaling.leaveRoom(this.room).catch(() => {});
    if (this.host.signaling.isAuthenticated) closing.push(leaving);
    await Promise.all(closing);
  }

  // ------------------------------------------------------------------------------------------------
  // Membership

  private enqueueMembership(task: () => Promise<void>): Promise<void> {
    const run = this.membership.then(() => (this.closed ? undefined : task()));
    this.membership = run.catch(() => {});
    return run;
  }

  private async refresh(): Promise<void> {
    await this.sync(await this.host.signaling.roomMembers(this.room));
  }

  private async sync(members: PeerId[]): Promise<void> {
    const present = new Set(members);
    for (const p of [...this.memberSet]) if (!present.has(p)) this.removeMember(p);
    for (const p of members) await this.addMember(p);
  }

  private async addMember(peerId: PeerId): Promise<void> {
    if (peerId === this.self || this.memberSet.has(peerId)) return;
    // Only paired peers are members: anyone may enter a room, nobody else can authenticate to us.
    if (!(await this.host.peers.lookup(peerId))) return;
    if (this.closed || this.memberSet.has(peerId)) return;
    this.memberSet.add(peerId);
    this.emit('joined', { peerId });
  }

  private removeMember(peerId: PeerId): void {
    if (!this.memberSet.delete(peerId)) return;
    const op = this.active;
    if (op?.ring.includes(peerId)) {
      op.fail(fail('mesh_member_left', `${op.name}: ${peerId} left mesh ${this.room} before it finished`));
    }
    const slot = this.slots.get(peerId);
    if (slot) {
      this.stopWaiting(slot, fail('mesh_not_member', `${peerId} left mesh ${this.room}`));
      const conn = slot.conn;
      slot.conn = undefined;
      slot.lost = false;
      if (conn?.isOpen) void conn.close(MeshCloseCode.LEFT, 'member left');
    }
    this.emit('left', { peerId });
  }

  // ------------------------------------------------------------------------------------------------
  // Connections

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
    return glareWinner(this.self, peerId) === this.self;
  }

  /** Takes an incoming dial from a member for which the member is the dialer. */
  private claim(request: ConnectionRequest): boolean {
    const from = request.peerId;
    if (this.closed || !this.memberSet.has(from) || this.isDialer(from)) return false;
    request.verify().then(
      (conn) => this.adopt(this.slot(from), conn),
      () => {},
    );
    return true;
  }

  private onSignal(from: PeerId, data: unknown): void {
    const parsed = DialMe.safeParse(data);
    if (!parsed.success || parsed.data.room !== this.room) return;
    if (this.closed || !this.memberSet.has(from) || !this.isDialer(from)) return;
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
    if (this.closed) throw fail('closed', 'mesh closed');
    if (!this.memberSet.has(peerId))
      throw fail('mesh_not_member', `${peerId} is not a member of ${this.room}`);
    const slot = this.slot(peerId);
    slot.lastUsed = Date.now();
    if (slot.conn?.isOpen) return slot.conn;
    if (!slot.dialing && slot.waiters.length === 0) this.makeRoom(slot);
    if (this.isDialer(peerId)) return this.dial(slot);
    return new Promise<Connection>((resolve, reject) => {
      slot.waiters.push({ resolve, reject });
      if (!slot.dialMeTimer) {
        const ask = () => {
          this.host.signaling
            .sendSignal(peerId, { p2ptlsMesh: 1, kind: 'dial-me', room: this.room })
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
    for (const w of slot.waiters.splice(0)) {
      if (conn) w.resolve(conn);
      else w.reject(error ?? fail('closed', 'mesh closed'));
    }
  }

  private dial(slot: Slot): Promise<Connection> {
    if (slot.conn?.isOpen) return Promise.resolve(slot.conn);
    if (!slot.dialing) {
      slot.dialing = this.host
        .connect(slot.peerId)
        .then((conn) => {
          if (this.closed || !this.memberSet.has(slot.peerId)) {
            void conn.close(MeshCloseCode.CLOSED, 'mesh closed');
            throw fail(this.closed ? 'closed' : 'mesh_not_member', `${slot.peerId} is no longer a member`);
          }
          this.adopt(slot, conn);
          return conn;
        })
        .finally(() => {
          slot.dialing = undefined;
        });
    }
    return slot.dialing;
  }

  /** Makes the connection the member's current one and starts reading it. */
  private adopt(slot: Slot, conn: Connection): void {
    if (!conn.isOpen) return;
    if (this.closed || !this.memberSet.has(slot.peerId)) {
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
      this.emit('reconnected', { peerId: slot.peerId });
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
        try {
          this.onFrame(slot.peerId, decodeFrame(bytes));
        } catch (err) {
          this.refuse(slot.peerId, asP2PTLSError(err, 'malformed'));
        }
      }
    } catch {
      // The connection ended with an error (truncated, timeout…): its close event (onClose) handles it.
    }
  }

  private onClose(slot: Slot, conn: Connection, info: CloseInfo): void {
    if (slot.conn !== conn) return;
    slot.conn = undefined;
    const op = this.active;
    if (op && (op.prev === slot.peerId || op.next === slot.peerId)) {
      op.fail(memberLost(slot.peerId, op.name, info.error ?? fail('closed', info.reason || 'closed')));
    }
    if (this.closed || !this.memberSet.has(slot.peerId) || isDeliberateClose(info)) return;
    slot.lost = true;
    if (this.isDialer(slot.peerId)) this.redial(slot, 1);
  }

  /** Keeps a member's failed connection coming back, with capped backoff, while it is in the room. */
  private redial(slot: Slot, attempt: number): void {
    const delay = Math.min(this.opts.maxReconnectDelayMs, this.opts.reconnectDelayMs * 2 ** (attempt - 1));
    slot.reconnectTimer = setTimeout(() => {
      slot.reconnectTimer = undefined;
      if (this.closed || !this.memberSet.has(slot.peerId) || slot.conn?.isOpen) return;
      this.dial(slot).catch((err: P2PTLSError) => {
        if (!DIAL_REFUSALS.has(err.code) && !slot.conn?.isOpen) this.redial(slot, attempt + 1);
      });
    }, delay);
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

  /** Sends a mesh frame to a member; resolves once queued on the transport. */
  private async sendFrame(peerId: PeerId, frame: Uint8Array): Promise<void> {
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

  /** Sends an ABORT without waiting: over the open connection, else by opening one in the background. */
  private sendAbort(peerId: PeerId, frame: Uint8Array): void {
    if (!this.memberSet.has(peerId)) return;
    this.sendFrame(peerId, frame).catch(() => {});
  }

  // ------------------------------------------------------------------------------------------------
  // Frames and collectives

  private refuse(peerId: PeerId, error: P2PTLSError): void {
    const slot = this.slots.get(peerId);
    if (slot) slot.counters.framesRefused++;
    const op = this.active;
    // A member that sends nonsense during an operation breaks it: fail it everywhere rather than guess.
    if (op?.isRunning && op.ring.includes(peerId)) op.fail(error);
    this.emit('error', { peerId, error });
  }

  private onFrame(from: PeerId, frame: MeshFrame): void {
    if (frame.type === FrameType.DATA) {
      this.emit('message', { from, data: frame.data });
      return;
    }
    const op = this.active;
    if (op && frame.seq === op.seq) {
      if (frame.type === FrameType.READY) op.onReady(from, frame);
      else if (frame.type === FrameType.CHUNK) op.onChunk(from, frame);
      else this.onAbort(from, frame);
      return;
    }
    if (frame.seq <= this.startedSeq) {
      // A straggler of an operation that already ended here (e.g. sent before the sender saw an abort).
      this.slot(from).counters.framesStale++;
      return;
    }
    if (frame.seq > this.startedSeq + MAX_SEQ_AHEAD) {
      throw fail('unexpected_message', `frame for operation #${frame.seq}; ours is #${this.startedSeq}`);
    }
    if (frame.type === FrameType.CHUNK) {
      // Nobody may send chunks before we said READY for that operation.
      throw fail('unexpected_message', `chunk of operation #${frame.seq}, which has not started here`);
    }
    if (this.early.length >= MAX_EARLY_FRAMES) {
      throw fail(
        'unexpected_message',
        `more than ${MAX_EARLY_FRAMES} frames for operations not started here`,
      );
    }
    this.early.push({ from, frame });
    if (frame.type === FrameType.ABORT) this.forwardAbort(from, frame);
  }

  /** An abort for an operation not running here: pass it on so it goes round the ring. */
  private forwardAbort(from: PeerId, frame: AbortFrame): void {
    if (this.abortsSeen.has(frame.seq)) return;
    this.abortsSeen.add(frame.seq);
    const ring = this.ring;
    const r = ring.indexOf(this.self);
    const bytes = encodeAbort(frame);
    for (const to of new Set([ring[mod(r - 1, ring.length)]!, ring[mod(r + 1, ring.length)]!])) {
      if (to !== from && to !== this.self) this.sendAbort(to, bytes);
    }
  }

  private onAbort(from: PeerId, frame: AbortFrame): void {
    this.abortsSeen.add(frame.seq);
    this.active?.onAbort(from, frame.code, frame.reason);
  }

  private run(
    kind: OpKind,
    tensor: Float32Array | undefined,
    param: number | PeerId,
    options: CollectiveOptions,
  ) {
    if (this.closed) return Promise.reject(fail('closed', 'mesh closed'));
    const seq = this.nextSeq++;
    const p = this.tail.then(() => this.execute(seq, kind, tensor, param, options));
    this.tail = p.catch(() => {});
    return p;
  }

  private async execute(
    seq: number,
    kind: OpKind,
    input: Float32Array | undefined,
    param: number | PeerId,
    options: CollectiveOptions,
  ): Promise<readonly PeerId[]> {
    if (this.closed) throw fail('closed', 'mesh closed');
    const ring = this.ring;
    let p = typeof param === 'number' ? param : ring.indexOf(param);
    if (kind === OpKind.BROADCAST && p < 0) {
      this.startedSeq = seq;
      const error = fail(
        'mesh_not_member',
        `broadcast root ${String(param)} is not a member of ${this.room}`,
      );
      this.forwardAbort(this.self, { type: FrameType.ABORT, seq, code: error.code, reason: error.message });
      throw error;
    }
    // A barrier is an all-reduce of one element per member: nobody can finish before all have sent.
    const tensor = input ?? new Float32Array(ring.length);
    if (kind === OpKind.BARRIER) p = 0;
    const ctx: OpContext = {
      self: this.self,
      send: (to, frame) => this.sendFrame(to, frame),
      sendAbort: (to, frame) => this.sendAbort(to, frame),
      chunkElements: this.opts.chunkElements,
      window: this.opts.window,
    };
    const op = new CollectiveOp(ctx, { kind, seq, ring, tensor, param: p });
    this.active = op;
    this.startedSeq = seq;
    const pinned = [op.prev, op.next].filter((x): x is PeerId => x !== undefined).map((x) => this.slot(x));
    for (const s of pinned) s.busy++;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => op.fail(fail('timeout', `${op.name} did not finish within ${options.timeoutMs} ms`)),
            options.timeoutMs,
          );
    try {
      op.start();
      const early = this.early.filter((e) => e.frame.seq === seq);
      this.early = this.early.filter((e) => e.frame.seq > seq);
      for (const { from, frame } of early) {
        if (frame.type === FrameType.READY) op.onReady(from, frame);
        else if (frame.type === FrameType.ABORT) op.onAbort(from, frame.code, frame.reason);
      }
      // A member that left between the snapshot and now: fail at once rather than wait for it.
      for (const m of ring) {
        if (m !== this.self && !this.memberSet.has(m)) {
          op.fail(fail('mesh_member_left', `${op.name}: ${m} left mesh ${this.room}`));
        }
      }
      await op.done;
      return ring;
    } finally {
      if (timer) clearTimeout(timer);
      for (const s of pinned) s.busy--;
      if (this.active === op) this.active = undefined;
      for (const s of [...this.abortsSeen]) if (s < seq - MAX_SEQ_AHEAD) this.abortsSeen.delete(s);
    }
  }
}
