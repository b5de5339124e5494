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
import { logger, shortId } from '../util/log.js';
import { COMPRESSIONS, Codec, type Compression } from './codec.js';
import { ringOrder } from './ring.js';
import { Scheduler } from './scheduler.js';
import { decodeFrame, encodeData, FrameType, type MeshFrame, OpKind } from './wire.js';

const debug = logger('mesh');

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
  /**
   * Elastic collectives (default true): an operation that loses a member (it left, died, or its link
   * failed) completes over the others, and every member gets the same result ({@link Mesh.lastContributors}
   * says whose tensors it is made of). False: strict, synchronous semantics — the operation fails on
   * every member with `mesh_member_left`. Every member of a mesh must use the same mode.
   */
  elastic?: boolean;
}

/** Per-operation options. */
export interface CollectiveOptions {
  /** Fail with `timeout` (on every member) if the operation has not finished by then. Default: no limit. */
  timeoutMs?: number;
}

/** Options of {@link Mesh.allReduce}. */
export interface AllReduceOptions extends CollectiveOptions {
  /**
   * How chunks cross the wire (every member must pass the same): `none` (float32, exact), `float16`, or
   * `int8` (one float32 scale per 256 elements, 0.254 of float32's bytes). Reduced in float32 at each hop.
   */
  compression?: Compression;
  /**
   * Error feedback for compression: a caller-owned buffer of the tensor's length, zero at first. What
   * compression lost of this member's input is kept there and added to its next input (updated only
   * when the operation succeeds).
   */
  residual?: Float32Array;
}

/** Events of a {@link Mesh}. */
export interface MeshEvents {
  /** A paired peer entered the room. */
  joined: { peerId: PeerId };
  /** A member left the room; its connection is closed, operations go on without it (strict mode: fail). */
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
  /** The room said it left while its connection was open: it stops being a member when that closes. */
  leftRoom: boolean;
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
  private readonly scheduler: Scheduler;

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
      elastic: options.elastic ?? true,
    };
    if (!(this.opts.maxConnections >= 2)) throw fail('invalid_argument', 'maxConnections must be at least 2');
    if (!(this.opts.chunkElements >= 1 && this.opts.chunkElements <= 4 * 1024 * 1024)) {
      throw fail('invalid_argument', 'chunkElements must be between 1 and 4 Mi');
    }
    if (!(this.opts.window >= 1)) throw fail('invalid_argument', 'window must be at least 1');
    this.scheduler = new Scheduler({
      self: this.self,
      room,
      chunkElements: this.opts.chunkElements,
      window: this.opts.window,
      ring: () => this.ring,
      isMember: (peerId) => this.memberSet.has(peerId),
      send: (to, frame) => this.sendFrame(to, frame),
      post: (to, frame) => this.sendAbort(to, frame),
      pin: (peerId) => {
        const slot = this.slot(peerId);
        slot.busy++;
        return () => {
          slot.busy--;
        };
      },
      stale: (from) => {
        this.slot(from).counters.framesStale++;
      },
    });
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
        if (r === room) mesh.enqueueMembership(async () => mesh.leftRoom(peerId));
      }),
      // After a signaling reconnection the client re-joins by itself; what changed meanwhile is unknown.
      sig.on('authenticated', () => mesh.enqueueMembership(() => mesh.refresh())),
      sig.on('signal', ({ from, data }) => mesh.onSignal(from, data)),
    );
    try {
      // Inside the membership queue: room events that arrive meanwhile are newer than the member list,
      // so they must be applied after it, not before.
      await mesh.enqueueMembership(async () => {
        await mesh.sync(await sig.joinRoom(room));
        // Nobody here yet: our operation numbers are the mesh's. Otherwise the first READY tells us.
        if (mesh.memberSet.size === 0) mesh.scheduler.startsMesh();
      });
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
   * Ring all-reduce: every member's `tensor` becomes the element-wise sum (or mean) over the members
   * that contributed. Reduce-scatter then all-gather, streamed in chunks, so each member sends and
   * receives 2(N−1)/N of the tensor. Every member must pass a tensor of the same length and the same
   * options. Elastic (default): a member lost mid-operation is left out and the operation completes over
   * the others — `mean` divides by the number of contributors, see {@link lastContributors}. On failure
   * the tensor (and `residual`) are unchanged.
   */
  async allReduce(
    tensor: Float32Array,
    op: 'sum' | 'mean' = 'sum',
    options: AllReduceOptions = {},
  ): Promise<Float32Array> {
    if (!(tensor instanceof Float32Array)) throw fail('invalid_argument', 'allReduce takes a Float32Array');
    if (op !== 'sum' && op !== 'mean') throw fail('invalid_argument', `unknown reduction ${String(op)}`);
    const compression = options.compression ?? 'none';
    if (!Object.hasOwn(COMPRESSIONS, compression)) {
      throw fail('invalid_argument', `unknown compression ${String(compression)}`);
    }
    const residual = options.residual;
    if (residual !== undefined && !(residual instanceof Float32Array && residual.length === tensor.length)) {
      throw fail('invalid_argument', 'residual must be a Float32Array of the tensor’s length');
    }
    await this.run(
      OpKind.ALL_REDUCE,
      tensor,
      op === 'mean' ? 1 : 0,
      options,
      COMPRESSIONS[compression],
      residual,
    );
    return tensor;
  }

  /**
   * Copies `root`'s tensor into every member's `tensor` (same length everywhere), pipelined along the
   * ring from the root. Resolves with `tensor`. Elastic: goes on without lost members, but fails if the
   * root is lost.
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

  /** Resolves once every member has entered this barrier (elastic: every member not lost meanwhile). */
  async barrier(options: CollectiveOptions = {}): Promise<void> {
    await this.run(OpKind.BARRIER, undefined, 0, options);
  }

  /**
   * The members (including us, in ring order) whose tensors made the result of the last collective
   * that completed here: the ring it started with, minus the members an elastic operation lost.
   */
  get lastContributors(): readonly PeerId[] {
    return this.scheduler.lastContributors;
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
    this.scheduler.close(fail('closed', 'mesh closed'));
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
    for (const p of [...this.memberSet]) if (!present.has(p)) this.leftRoom(p);
    for (const p of members) await this.addMember(p);
  }

  /**
   * The room says the member is gone. With an open connection to it, it stays a member until that
   * connection closes (it closes its connections when it leaves; a dead one fails the heartbeat) or it
   * is back in the room: a signaling server that restarts tells every room that everyone left, and a
   * running operation must not lose members that only lost the server.
   */
  private leftRoom(peerId: PeerId): void {
    const slot = this.slots.get(peerId);
    if (this.memberSet.has(peerId) && slot?.conn?.isOpen) {
      debug('%s: %s left the room; a member until its connection closes', this.room, shortId(peerId));
      slot.leftRoom = true;
      return;
    }
    this.removeMember(peerId);
  }

  private async addMember(peerId: PeerId): Promise<void> {
    const slot = this.slots.get(peerId);
    if (slot) slot.leftRoom = false;
    if (peerId === this.self || this.memberSet.has(peerId)) return;
    // Only paired peers are members: anyone may enter a room, nobody else can authenticate to us.
    if (!(await this.host.peers.lookup(peerId))) return;
    if (this.closed || this.memberSet.has(peerId)) return;
    this.memberSet.add(peerId);
    this.emit('joined', { peerId });
  }

  private removeMember(peerId: PeerId): void {
    if (!this.memberSet.delete(peerId)) return;
    this.scheduler.left(peerId, fail('mesh_member_left', `${peerId} left mesh ${this.room}`));
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
        leftRoom: false,
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
    this.scheduler.linkLost(slot.peerId, info.error ?? fail('closed', info.reason || 'closed'));
    if (slot.leftRoom) {
      slot.leftRoom = false;
      this.enqueueMembership(async () => this.removeMember(slot.peerId)).catch(() => {});
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
    // A member that sends nonsense during an operation breaks it: fail it everywhere rather than guess.
    this.scheduler.refused(peerId, error);
    this.emit('error', { peerId, error });
  }

  private onFrame(from: PeerId, frame: MeshFrame): void {
    if (frame.type === FrameType.DATA) this.emit('message', { from, data: frame.data });
    else this.scheduler.onFrame(from, frame);
  }

  private run(
    kind: OpKind,
    tensor: Float32Array | undefined,
    param: number | PeerId,
    options: CollectiveOptions,
    codec: Codec = Codec.NONE,
    residual?: Float32Array,
  ): Promise<readonly PeerId[]> {
    if (this.closed) return Promise.reject(fail('closed', 'mesh closed'));
    return this.scheduler.run({
      kind,
      tensor,
      param,
      elastic: this.opts.elastic,
      codec,
      residual,
      timeoutMs: options.timeoutMs,
    });
  }
}
