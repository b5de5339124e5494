/**
 * One collective operation on one member: ring all-reduce (reduce-scatter then all-gather), pipelined
 * broadcast along the ring, and the barrier (an all-reduce of one element per member, so that no member
 * can finish before every member has contributed). PROTOCOL.md §12 describes the exchange.
 *
 * The operation is driven by received data: a chunk is reduced into (or copied to) the caller's tensor
 * the moment it arrives and, if the algorithm says so, queued to be forwarded. Nothing is ever buffered
 * whole: a sender starts only after its successor said READY for this very operation (so every chunk
 * lands in an operation that exists), and at most `window` chunks per operation are queued on the
 * connection, their bytes read from the tensor only when they are sent.
 */
import { type ErrorCode, ErrorCodes, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import { groupFingerprint, mod, segment } from './ring.js';
import {
  applyChunk,
  type ChunkFrame,
  encodeAbort,
  encodeChunk,
  encodeReady,
  OpKind,
  Phase,
  type ReadyFrame,
} from './wire.js';

/** What an operation needs from its mesh. */
export interface OpContext {
  readonly self: PeerId;
  /** Sends a frame to a member, opening the connection if needed; resolves once it is queued. */
  send(to: PeerId, frame: Uint8Array): Promise<void>;
  /** Sends an ABORT without waiting (best effort: the peer may be the one that is gone). */
  sendAbort(to: PeerId, frame: Uint8Array): void;
  readonly chunkElements: number;
  readonly window: number;
}

export interface OpSpec {
  kind: OpKind;
  seq: number;
  /** The ring: sorted member list including `self`. */
  ring: readonly PeerId[];
  tensor: Float32Array;
  /** Reduction for all-reduce (0 sum, 1 mean), root rank for broadcast. */
  param: number;
}

interface Send {
  phase: Phase;
  step: number;
  offset: number;
  count: number;
}

/** A contiguous range this member expects from its predecessor, in order. */
interface Expect {
  phase: Phase;
  step: number;
  start: number;
  end: number;
}

const KIND_NAMES: Record<OpKind, string> = {
  [OpKind.ALL_REDUCE]: 'allReduce',
  [OpKind.BROADCAST]: 'broadcastTensor',
  [OpKind.BARRIER]: 'barrier',
};
const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes));

export class CollectiveOp {
  readonly seq: number;
  readonly kind: OpKind;
  readonly ring: readonly PeerId[];
  readonly group: number;
  readonly rank: number;
  /** The member this one receives from, if any. */
  readonly prev: PeerId | undefined;
  /** The member this one sends to, if any. */
  readonly next: PeerId | undefined;
  /** Settles when the operation is complete here, or failed. */
  readonly done: Promise<void>;

  private readonly tensor: Float32Array;
  private readonly param: number;
  private readonly n: number;
  private readonly expects: Expect[] = [];
  private expectIndex = 0;
  private expectOffset = 0;
  private readonly queue: Send[] = [];
  private queueHead = 0;
  private inflight = 0;
  private nextReady = false;
  private state: 'idle' | 'running' | 'done' | 'failed' = 'idle';
  private resolve!: () => void;
  private reject!: (e: P2PTLSError) => void;
  /** Bytes of tensor data received and sent, for stats. */
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    private readonly ctx: OpContext,
    spec: OpSpec,
  ) {
    this.seq = spec.seq;
    this.kind = spec.kind;
    this.ring = spec.ring;
    this.group = groupFingerprint(spec.ring);
    this.tensor = spec.tensor;
    this.param = spec.param;
    this.n = spec.tensor.length;
    this.rank = spec.ring.indexOf(ctx.self);
    if (this.rank < 0) throw fail('invalid_argument', 'the ring must include this member');
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => {});
    const N = spec.ring.length;
    const r = this.rank;
    let receives = N > 1;
    let sends = N > 1;
    if (this.kind === OpKind.BROADCAST) {
      receives = N > 1 && r !== this.param;
      sends = N > 1 && mod(r + 1, N) !== this.param;
    }
    this.prev = receives ? spec.ring[mod(r - 1, N)] : undefined;
    this.next = sends ? spec.ring[mod(r + 1, N)] : undefined;
    if (!receives) return;
    if (this.kind === OpKind.BROADCAST) {
      if (this.n > 0) this.expects.push({ phase: Phase.BROADCAST, step: 0, start: 0, end: this.n });
      return;
    }
    for (const phase of [Phase.REDUCE_SCATTER, Phase.ALL_GATHER]) {
      for (let step = 0; step < N - 1; step++) {
        const k = phase === Phase.REDUCE_SCATTER ? mod(r - 1 - step, N) : mod(r - step, N);
        const { start, end } = segment(k, this.n, N);
        if (end > start) this.expects.push({ phase, step, start, end });
      }
    }
    this.expectOffset = this.expects[0]?.start ?? 0;
  }

  get name(): string {
    return `${KIND_NAMES[this.kind]} #${this.seq}`;
  }

  get isRunning(): boolean {
    return this.state === 'running';
  }

  /** The READY this member sends to its predecessor. */
  private readyFrame(): Omit<ReadyFrame, 'type'> {
    return { kind: this.kind, seq: this.seq, group: this.group, length: this.n, param: this.param };
  }

  /** Says READY to the predecessor and queues this member's own first sends. */
  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    const N = this.ring.length;
    if (this.prev) {
      this.ctx
        .send(this.prev, encodeReady(this.readyFrame()))
        .catch((err: P2PTLSError) => this.fail(memberLost(this.prev!, this.name, err)));
    }
    if (this.next) {
      if (this.kind === OpKind.BROADCAST) {
        // Only the root has data of its own; the others forward what they receive.
        if (this.rank === this.param) this.queueRange(Phase.BROADCAST, 0, 0, this.n);
      } else {
        const { start, end } = segment(this.rank, this.n, N);
        this.queueRange(Phase.REDUCE_SCATTER, 0, start, end);
      }
    }
    this.check();
  }

  /** The successor's READY: it must describe the same operation over the same ring. */
  onReady(from: PeerId, f: ReadyFrame): void {
    if (this.state !== 'running') return;
    if (from !== this.next) {
      this.fail(
        fail(
          'mesh_mismatch',
          `${this.name}: READY from ${from}, but our successor is ${this.next ?? 'nobody'}`,
        ),
      );
      return;
    }
    const mine = this.readyFrame();
    const diff =
      f.group !== mine.group
        ? 'a different member list'
        : f.kind !== mine.kind
          ? `a different operation (${KIND_NAMES[f.kind]})`
          : f.length !== mine.length
            ? `a tensor of ${f.length} elements, not ${mine.length}`
            : f.param !== mine.param
              ? this.kind === OpKind.BROADCAST
                ? 'a different root'
                : 'a different reduction'
              : '';
    if (diff) {
      this.fail(fail('mesh_mismatch', `${this.name}: ${from} started it with ${diff}`));
      return;
    }
    this.nextReady = true;
    this.pump();
  }

  /** A chunk from the predecessor: it must be exactly the next range expected. */
  onChunk(from: PeerId, f: ChunkFrame): void {
    if (this.state !== 'running') return;
    if (from !== this.prev) {
      this.fail(fail('unexpected_message', `${this.name}: chunk from ${from}, who is not our predecessor`));
      return;
    }
    const e = this.expects[this.expectIndex];
    if (!e) {
      this.fail(fail('unexpected_message', `${this.name}: chunk from ${from} after the last expected one`));
      return;
    }
    if (
      f.phase !== e.phase ||
      f.step !== e.step ||
      f.offset !== this.expectOffset ||
      f.count > e.end - f.offset
    ) {
      this.fail(
        fail(
          'unexpected_message',
          `${this.name}: chunk (phase ${f.phase}, step ${f.step}, elements ${f.offset}+${f.count}) from ${from}; ` +
            `expected phase ${e.phase}, step ${e.step}, elements from ${this.expectOffset} up to ${e.end}`,
        ),
      );
      return;
    }
    const reduce = f.phase === Phase.REDUCE_SCATTER;
    applyChunk(this.tensor, f.offset, f.payload, reduce);
    this.bytesIn += f.payload.length;
    this.expectOffset += f.count;
    if (this.expectOffset === e.end) {
      this.expectIndex++;
      this.expectOffset = this.expects[this.expectIndex]?.start ?? 0;
    }
    // What arrived at step s is what this member passes on at step s + 1 (PROTOCOL.md §12.3).
    const last = this.ring.length - 2;
    if (this.next) {
      if (f.phase === Phase.BROADCAST) {
        this.queue.push({ phase: Phase.BROADCAST, step: 0, offset: f.offset, count: f.count });
      } else if (f.phase === Phase.REDUCE_SCATTER) {
        this.queue.push(
          f.step < last
            ? { phase: Phase.REDUCE_SCATTER, step: f.step + 1, offset: f.offset, count: f.count }
            : { phase: Phase.ALL_GATHER, step: 0, offset: f.offset, count: f.count },
        );
      } else if (f.step < last) {
        this.queue.push({ phase: Phase.ALL_GATHER, step: f.step + 1, offset: f.offset, count: f.count });
      }
    }
    this.pump();
    this.check();
  }

  /** An ABORT for this operation from another member. */
  onAbort(from: PeerId, code: string, reason: string): void {
    const c: ErrorCode = KNOWN_CODES.has(code) ? (code as ErrorCode) : 'peer_error';
    this.fail(fail(c, `${reason} (reported by ${from})`), from);
  }

  /**
   * Fails the operation here and tells both ring neighbours (except `except`, who told us), so that the
   * failure reaches every member whichever link broke. Returns false if it had already settled.
   */
  fail(error: P2PTLSError, except?: PeerId): boolean {
    if (this.state === 'done' || this.state === 'failed') return false;
    this.state = 'failed';
    const abort = encodeAbort({ seq: this.seq, code: error.code, reason: error.message });
    const N = this.ring.length;
    if (N > 1) {
      for (const to of new Set([this.ring[mod(this.rank - 1, N)]!, this.ring[mod(this.rank + 1, N)]!])) {
        if (to !== except && to !== this.ctx.self) this.ctx.sendAbort(to, abort);
      }
    }
    this.reject(error);
    return true;
  }

  private queueRange(phase: Phase, step: number, start: number, end: number): void {
    for (let offset = start; offset < end; offset += this.ctx.chunkElements) {
      this.queue.push({ phase, step, offset, count: Math.min(this.ctx.chunkElements, end - offset) });
    }
  }

  private pump(): void {
    const next = this.next;
    if (!next || !this.nextReady) return;
    while (
      this.state === 'running' &&
      this.inflight < this.ctx.window &&
      this.queueHead < this.queue.length
    ) {
      const s = this.queue[this.queueHead++]!;
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      // Read from the tensor now, not when queued: the value to forward is the one reduced so far.
      const frame = encodeChunk(
        { phase: s.phase, seq: this.seq, step: s.step, offset: s.offset },
        this.tensor.subarray(s.offset, s.offset + s.count),
      );
      this.inflight++;
      this.bytesOut += s.count * 4;
      this.ctx.send(next, frame).then(
        () => {
          this.inflight--;
          this.pump();
          this.check();
        },
        (err: P2PTLSError) => this.fail(memberLost(next, this.name, err)),
      );
    }
  }

  private check(): void {
    if (this.state !== 'running') return;
    if (this.expectIndex < this.expects.length) return;
    if (this.queueHead < this.queue.length || this.inflight > 0) return;
    this.state = 'done';
    this.resolve();
  }
}

/** The error of an operation whose link to `peer` failed. */
export function memberLost(peer: PeerId, op: string, cause?: P2PTLSError): P2PTLSError {
  if (cause?.code.startsWith('mesh_')) return cause;
  return fail(
    'mesh_member_left',
    `${op}: lost ${peer}${cause ? ` (${cause.code}: ${cause.message})` : ''}`,
    cause,
  );
}
