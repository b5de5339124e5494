/**
 * One collective operation on one member: ring all-reduce (reduce-scatter then all-gather), pipelined
 * broadcast along the ring, and the barrier (an all-reduce of one element per member, so that no member
 * can finish before every member has contributed). PROTOCOL.md §12 describes the exchange.
 *
 * One CollectiveOp is one attempt over one ring: an elastic operation that loses a member runs a new
 * attempt over the others (scheduler.ts).
 *
 * The operation is driven by received data: a chunk is decoded and reduced into (or copied to) the
 * working tensor the moment it arrives and, if the algorithm says so, queued to be forwarded. A sender
 * starts only after its successor said READY for this very attempt (so every chunk lands in an
 * operation that exists), and at most `window` chunks per operation are queued on the connection.
 * Reduce-scatter chunks are encoded from the tensor when sent (decode, add in float32, re-encode at each
 * hop); all-gather chunks are forwarded as the bytes that arrived, and the owner of a reduced segment
 * keeps what its encoding decodes to, so every member decodes the same bytes into the same floats.
 */
import { type ErrorCode, ErrorCodes, fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import { Codec, decodeInto } from './codec.js';
import { mod, segment } from './ring.js';
import {
  applyChunk,
  CHUNK_HEADER_LEN,
  type ChunkFrame,
  encodeAbort,
  encodeChunk,
  encodeChunkPayload,
  encodeReady,
  OpKind,
  Phase,
  type ReadyFrame,
  type ResultFrame,
} from './wire.js';

/** What an operation needs from its mesh. */
export interface OpContext {
  readonly self: PeerId;
  /**
   * Sends a frame to a member, opening the connection if needed; resolves once the transport is done with
   * the frame (a connection's send: sealed and handed to the link), after which the operation may write
   * its next chunk over it.
   */
  send(to: PeerId, frame: Uint8Array): Promise<void>;
  /** Sends an ABORT without waiting (best effort: the peer may be the one that is gone). */
  sendAbort(to: PeerId, frame: Uint8Array): void;
  /** The link to a ring neighbour failed (the scheduler fails the operation or goes on without it). */
  lost(peer: PeerId, cause: P2PTLSError): void;
  readonly chunkElements: number;
  readonly window: number;
}

export interface OpSpec {
  kind: OpKind;
  seq: number;
  /** This attempt's ring: sorted member list including `self`. */
  ring: readonly PeerId[];
  /** Fingerprint of the operation's first ring (the members when it started). */
  group: number;
  /** Fingerprint of this attempt's ring (`group` for strict operations). */
  view: number;
  codec: Codec;
  elastic: boolean;
  /** The working tensor (the caller's stays untouched until the operation succeeds). */
  tensor: Float32Array;
  /** Reduction for all-reduce (0 sum, 1 mean), root rank (in `ring`) for broadcast. */
  param: number;
}

interface Send {
  phase: Phase;
  step: number;
  offset: number;
  count: number;
  /** Bytes to forward unchanged (all-gather, broadcast, result); otherwise encoded from the tensor. */
  payload?: Uint8Array;
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
  readonly view: number;
  readonly codec: Codec;
  readonly elastic: boolean;
  readonly rank: number;
  /** The ring neighbour this member receives from and sends READY to (undefined when alone). */
  readonly prev: PeerId | undefined;
  /** The ring neighbour this member sends to and hears READY from (undefined when alone). */
  readonly next: PeerId | undefined;
  /** Settles when the operation is complete here, or failed. */
  readonly done: Promise<void>;
  /** Set when a member that had completed the operation sent its result instead (elastic). */
  adopted: { contributors: PeerId[] } | undefined;

  readonly tensor: Float32Array;
  readonly param: number;
  readonly n: number;
  /** Whether chunks go to `next` (a broadcast chain ends before the root). */
  private readonly sends: boolean;
  private expects: Expect[] = [];
  private expectIndex = 0;
  private expectOffset = 0;
  private readonly queue: Send[] = [];
  private queueHead = 0;
  private inflight = 0;
  /**
   * Frames whose send completed (sealed and handed to the link: nothing reads them any more), written
   * over by the next chunks instead of allocating a frame per chunk. Why: a member of a 16 MiB
   * all-reduce of 4 sends ~380 frames of 64 KB, and buffers that size, a few per record, were what
   * made V8 collect garbage every ~70 ms (see SessionOutput.copiesReliable).
   */
  private readonly spareFrames: Uint8Array[] = [];
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
    this.group = spec.group;
    this.view = spec.view;
    this.codec = spec.codec;
    this.elastic = spec.elastic;
    this.adopted = undefined;
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
    this.sends = sends;
    // Every member says READY to its predecessor, even the root of a broadcast: a member that joined
    // the mesh late learns the operation number from it (scheduler.ts).
    this.prev = N > 1 ? spec.ring[mod(r - 1, N)] : undefined;
    this.next = N > 1 ? spec.ring[mod(r + 1, N)] : undefined;
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
    return {
      kind: this.kind,
      seq: this.seq,
      group: this.group,
      length: this.n,
      param: this.param,
      codec: this.codec,
      elastic: this.elastic,
      view: this.view,
    };
  }

  /**
   * What makes a READY for this operation incompatible with ours, or '' — ignoring the attempt (`view`,
   * and the broadcast root's rank, which depends on it) unless `sameAttempt`.
   */
  mismatch(f: ReadyFrame, sameAttempt: boolean): string {
    const mine = this.readyFrame();
    if (f.group !== mine.group) return 'a different member list';
    if (f.kind !== mine.kind) return `a different operation (${KIND_NAMES[f.kind]})`;
    // A barrier's length is its ring's size: only the same attempt must agree on it.
    if (f.length !== mine.length && (sameAttempt || f.kind !== OpKind.BARRIER)) {
      return `a tensor of ${f.length} elements, not ${mine.length}`;
    }
    if (f.codec !== mine.codec) return 'a different compression';
    if (f.elastic !== mine.elastic) return f.elastic ? 'elastic mode' : 'strict mode';
    if (f.kind !== OpKind.BROADCAST && f.param !== mine.param) return 'a different reduction';
    if (!sameAttempt) return '';
    if (f.view !== mine.view) return 'a different member list';
    if (f.param !== mine.param) return 'a different root';
    return '';
  }

  /** Says READY to the predecessor and queues this member's own first sends. */
  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    const N = this.ring.length;
    if (this.prev) {
      const prev = this.prev;
      this.ctx.send(prev, encodeReady(this.readyFrame())).catch((err: P2PTLSError) => this.lose(prev, err));
    }
    if (this.sends) {
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
    const diff = this.mismatch(f, true);
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
    const codec = f.phase === Phase.REDUCE_SCATTER || f.phase === Phase.ALL_GATHER ? this.codec : Codec.NONE;
    if (f.codec !== codec) {
      this.fail(fail('unexpected_message', `${this.name}: chunk in encoding ${f.codec}, not ${codec}`));
      return;
    }
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
    applyChunk(this.tensor, f, reduce);
    this.bytesIn += f.payload.length;
    this.expectOffset += f.count;
    if (this.expectOffset === e.end) {
      this.expectIndex++;
      this.expectOffset = this.expects[this.expectIndex]?.start ?? 0;
    }
    // What arrived at step s is what this member passes on at step s + 1 (PROTOCOL.md §12.3).
    const last = this.ring.length - 2;
    const { offset, count, payload } = f;
    if (this.sends && !this.adopted) {
      if (f.phase === Phase.BROADCAST) {
        this.queue.push({ phase: Phase.BROADCAST, step: 0, offset, count, payload });
      } else if (f.phase === Phase.REDUCE_SCATTER) {
        this.queue.push(
          f.step < last
            ? { phase: Phase.REDUCE_SCATTER, step: f.step + 1, offset, count }
            : { phase: Phase.ALL_GATHER, step: 0, offset, count },
        );
      } else if (f.phase === Phase.ALL_GATHER && f.step < last) {
        this.queue.push({ phase: Phase.ALL_GATHER, step: f.step + 1, offset, count, payload });
      }
    }
    this.pump();
    this.check();
  }

  /**
   * The predecessor completed this operation in an earlier attempt and sends its result (RESULT, then
   * chunks of phase RESULT): take that instead of reducing, and stop sending.
   */
  adoptResult(from: PeerId, f: ResultFrame): void {
    if (this.state !== 'running' || this.adopted) return;
    if (from !== this.prev || f.length !== this.n) {
      this.fail(fail('unexpected_message', `${this.name}: RESULT from ${from} does not fit`));
      return;
    }
    this.adopted = { contributors: f.contributors };
    this.queueHead = this.queue.length;
    this.expects = this.n > 0 ? [{ phase: Phase.RESULT, step: 0, start: 0, end: this.n }] : [];
    this.expectIndex = 0;
    this.expectOffset = 0;
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

  /** Ends this attempt without telling anyone (the scheduler already did, with LOST). */
  cancel(error: P2PTLSError): void {
    if (this.state === 'done' || this.state === 'failed') return;
    this.state = 'failed';
    this.reject(error);
  }

  private lose(peer: PeerId, err: P2PTLSError): void {
    if (this.state === 'running') this.ctx.lost(peer, err);
  }

  private pump(): void {
    const next = this.next;
    if (!next || !this.sends || !this.nextReady || this.adopted) return;
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
      const codec = s.phase === Phase.BROADCAST ? Codec.NONE : this.codec;
      const header = {
        phase: s.phase,
        codec,
        seq: this.seq,
        step: s.step,
        offset: s.offset,
        view: this.view,
      };
      const spare = this.spareFrames.pop();
      let frame: Uint8Array;
      if (s.payload) frame = encodeChunkPayload(header, s.count, s.payload, spare);
      else {
        // Read from the tensor now, not when queued: the value to forward is the one reduced so far.
        const values = this.tensor.subarray(s.offset, s.offset + s.count);
        frame = encodeChunk(header, values, spare);
        // The reduced segment leaves its owner: keep what every other member will decode from it.
        if (s.phase === Phase.ALL_GATHER && codec !== Codec.NONE) {
          decodeInto(codec, frame.subarray(CHUNK_HEADER_LEN), s.count, this.tensor, s.offset, false);
        }
      }
      this.inflight++;
      this.bytesOut += frame.length - CHUNK_HEADER_LEN;
      this.ctx.send(next, frame).then(
        () => {
          if (this.spareFrames.length < this.ctx.window) this.spareFrames.push(new Uint8Array(frame.buffer));
          this.inflight--;
          this.pump();
          this.check();
        },
        (err: P2PTLSError) => this.lose(next, err),
      );
    }
  }

  private check(): void {
    if (this.state !== 'running') return;
    if (this.expectIndex < this.expects.length) return;
    // An adopted result needs nothing sent: sends still queued on the transport are of no use to anyone.
    if (!this.adopted && (this.queueHead < this.queue.length || this.inflight > 0)) return;
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
