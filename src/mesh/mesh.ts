/**
 * A mesh: the paired peers present in one signaling room (membership.ts), with a p2ptls connection to
 * each one that is needed (pool.ts), application messages, and the collective operations of
 * data-parallel training over TCP mode (scheduler.ts, collective.ts; docs/MESH.md, PROTOCOL.md §12).
 * `Mesh` is the facade that wires them together; {@link joinMesh} makes one.
 */
import { asP2PTLSError, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import { RoomNameSchema } from '../signaling/messages.js';
import { utf8 } from '../util/bytes.js';
import { TypedEmitter } from '../util/emitter.js';
import { COMPRESSIONS, Codec, type Compression } from './codec.js';
import { Membership } from './membership.js';
import { ConnectionPool, type MeshHost, type MeshPeerStats } from './pool.js';
import { Scheduler } from './scheduler.js';
import { decodeFrame, encodeData, FrameType, OpKind } from './wire.js';

export { MeshCloseCode, type MeshHost, type MeshPeerStats } from './pool.js';

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

/** Outcome of {@link Mesh.broadcast}: who got the message queued, and who could not be reached. */
export interface BroadcastResult {
  sent: PeerId[];
  failed: { peerId: PeerId; error: P2PTLSError }[];
}

/**
 * The paired peers of one signaling room, connected as needed. Get one with {@link joinMesh}.
 *
 * Collective operations (`allReduce`, `broadcastTensor`, `barrier`) must be called by every member in
 * the same order, like MPI or torch.distributed collectives; each runs over the members present when
 * it starts (sorted peerIds give the ring). Elastic (the default): a member lost before it is done is
 * left out and the others complete alike. Strict: it fails on every member with a typed error. Never
 * a hang.
 */
export class Mesh extends TypedEmitter<MeshEvents> {
  readonly room: string;
  private readonly self: PeerId;
  private readonly opts: Required<MeshOptions>;
  private readonly membership: Membership;
  private readonly pool: ConnectionPool;
  // Collectives run one after another, in call order: the n-th call is operation n on every member.
  private readonly scheduler: Scheduler;
  private readonly cleanups: (() => void)[] = [];
  private closed = false;

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
    const isOpen = () => !this.closed;
    this.membership = new Membership({
      self: this.self,
      room,
      host,
      isOpen,
      isConnected: (peerId) => this.pool.isConnected(peerId),
      probe: (peerId) => this.pool.probe(peerId),
      joined: (peerId) => this.emit('joined', { peerId }),
      left: (peerId) => this.memberLeft(peerId),
    });
    this.pool = new ConnectionPool(
      {
        self: this.self,
        room,
        host,
        isOpen,
        isMember: (peerId) => this.membership.has(peerId),
        received: (from, bytes) => this.received(from, bytes),
        closed: (peerId, info) => {
          this.scheduler.linkLost(peerId, info.error ?? fail('closed', info.reason || 'closed'));
          this.membership.connectionClosed(peerId);
        },
        reconnected: (peerId) => this.emit('reconnected', { peerId }),
      },
      this.opts,
    );
    this.scheduler = new Scheduler({
      self: this.self,
      room,
      chunkElements: this.opts.chunkElements,
      window: this.opts.window,
      ring: () => this.membership.ring,
      isMember: (peerId) => this.membership.has(peerId),
      send: (to, frame) => this.pool.send(to, frame),
      post: (to, frame) => this.pool.post(to, frame),
      pin: (peerId) => this.pool.pin(peerId),
      stale: (from) => this.pool.count(from, 'framesStale'),
    });
  }

  /** @internal Use {@link joinMesh}. */
  static async join(host: MeshHost, room: string, options: MeshOptions = {}): Promise<Mesh> {
    if (!RoomNameSchema.safeParse(room).success) throw fail('invalid_argument', `not a room name: ${room}`);
    const mesh = new Mesh(host, room, options);
    const members = mesh.membership;
    const sig = host.signaling;
    mesh.cleanups.push(
      host.claimIncoming(
        (request) => mesh.pool.claim(request),
        () => mesh.close(),
      ),
      sig.on('room:joined', ({ room: r, peerId }) => {
        if (r === room) members.enqueue(() => members.add(peerId));
      }),
      sig.on('room:left', ({ room: r, peerId }) => {
        if (r === room) members.enqueue(() => members.leftRoom(peerId));
      }),
      // After a signaling reconnection the client re-joins by itself; what changed meanwhile is unknown.
      sig.on('authenticated', () => members.enqueue(async () => members.sync(await sig.roomMembers(room)))),
      sig.on('signal', ({ from, data }) => mesh.pool.onSignal(from, data)),
    );
    try {
      // Inside the membership queue: room events that arrive meanwhile are newer than the member list,
      // so they must be applied after it, not before.
      await members.enqueue(async () => {
        await members.sync(await sig.joinRoom(room));
        // Nobody here yet: our operation numbers are the mesh's. Otherwise the first READY tells us.
        if (members.size === 0) mesh.scheduler.startsMesh();
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
    return this.membership.list;
  }

  /** Members including us, in ring order: what the next collective operation runs over. */
  get ring(): PeerId[] {
    return this.membership.ring;
  }

  /** Whether the mesh is open. */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** Resolves once the mesh counts at least `count` members including us; rejects with `timeout`. */
  waitForMembers(count: number, timeoutMs = 60_000): Promise<void> {
    if (this.membership.size + 1 >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.membership.size + 1 < count) return;
        done();
        resolve();
      };
      const off = this.on('joined', check);
      const timer = setTimeout(() => {
        done();
        reject(fail('timeout', `${this.membership.size + 1} of ${count} members after ${timeoutMs} ms`));
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
    if (!this.membership.has(peerId)) {
      throw fail('mesh_not_member', `${peerId} is not a member of mesh ${this.room}`);
    }
    await this.pool.send(peerId, encodeData(bytes));
  }

  /** Sends bytes to every member; resolves with who has it queued and who could not be reached. */
  async broadcast(data: Uint8Array | string): Promise<BroadcastResult> {
    const frame = encodeData(typeof data === 'string' ? utf8(data) : data);
    const members = this.members;
    const outcomes = await Promise.allSettled(members.map((p) => this.pool.send(p, frame)));
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
  peerStats(peerId: PeerId): Promise<MeshPeerStats> {
    return this.pool.peerStats(peerId);
  }

  /** Statistics of every member's link. */
  stats(): Promise<MeshPeerStats[]> {
    return Promise.all(this.members.map((p) => this.pool.peerStats(p)));
  }

  /** How many connections are open now (never more than `maxConnections`). */
  get openConnections(): number {
    return this.pool.openConnections;
  }

  /** Leaves the room, closes every mesh connection and fails pending operations with `closed`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.cleanups.splice(0)) off();
    const error = fail('closed', 'mesh closed');
    this.scheduler.close(error);
    const closing: Promise<unknown>[] = [this.pool.close(error)];
    // leaveRoom forgets the room at once (no re-join after a reconnection) but would wait for a signaling
    // connection that may never come back: only wait for the answer of a live one.
    const leaving = this.host.signaling.leaveRoom(this.room).catch(() => {});
    if (this.host.signaling.isAuthenticated) closing.push(leaving);
    await Promise.all(closing);
  }

  private memberLeft(peerId: PeerId): void {
    this.scheduler.left(peerId, fail('mesh_member_left', `${peerId} left mesh ${this.room}`));
    this.pool.memberGone(peerId, fail('mesh_not_member', `${peerId} left mesh ${this.room}`));
    this.emit('left', { peerId });
  }

  /** A message from a member: application bytes, or a collective frame. */
  private received(from: PeerId, bytes: Uint8Array): void {
    try {
      const frame = decodeFrame(bytes);
      if (frame.type === FrameType.DATA) this.emit('message', { from, data: frame.data });
      else this.scheduler.onFrame(from, frame);
    } catch (err) {
      const error = asP2PTLSError(err, 'malformed');
      this.pool.count(from, 'framesRefused');
      // A member that sends nonsense during an operation breaks it: fail it everywhere rather than guess.
      this.scheduler.refused(from, error);
      this.emit('error', { peerId: from, error });
    }
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

/**
 * Joins the mesh of paired peers in a signaling room (see {@link Mesh}): messages, broadcast and
 * collective operations over connections opened as needed. One mesh per host at a time
 * (`invalid_argument` otherwise); while it is open, dials from its members go to the mesh, not to the
 * host's `incoming()`, and closing the host closes the mesh.
 */
export function joinMesh(host: MeshHost, room: string, options?: MeshOptions): Promise<Mesh> {
  return Mesh.join(host, room, options);
}
