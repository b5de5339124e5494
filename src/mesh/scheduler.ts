/**
 * Collective scheduling of a mesh: operation numbers, frames for operations not started yet, aborts, and
 * elastic operations (PROTOCOL.md §12.3, §12.4). One Scheduler per mesh owns all of it; the mesh hands
 * it every collective frame and every loss of a member or of a link.
 *
 * An operation runs in attempts. The first runs over the members present when it starts. In elastic
 * mode (the default), a member lost meanwhile — it left the room, its process died, its link to a ring
 * neighbour failed — is passed round as LOST, and every member starts a new attempt over the others from
 * its untouched input (the caller's tensor, written only on success); a member that had already completed sends its result to whoever asks for the
 * operation again (RESULT), so every member ends with the same tensor. Strict mode fails the operation on
 * every member instead. Either way the caller's tensor changes only when its operation succeeds.
 */
import { fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import { logger, shortId } from '../util/log.js';
import { Codec, roundTrip } from './codec.js';
import { CollectiveOp, memberLost, type OpContext } from './collective.js';
import { groupFingerprint, mod } from './ring.js';
import {
  type AbortFrame,
  encodeAbort,
  encodeChunk,
  encodeLost,
  encodeResult,
  FrameType,
  type LostFrame,
  type MeshFrame,
  OpKind,
  Phase,
  type ReadyFrame,
} from './wire.js';

const debug = logger('mesh:op');

/** READY/ABORT/LOST frames for operations not started here yet, kept at most this many. */
const MAX_EARLY_FRAMES = 256;
/** How far ahead of ours a peer's operation may be. */
const MAX_SEQ_AHEAD = 1024;

/** What the scheduler needs from its mesh. */
export interface SchedulerHost {
  readonly self: PeerId;
  readonly room: string;
  readonly chunkElements: number;
  readonly window: number;
  /** Members including us, in ring order, now. */
  ring(): PeerId[];
  isMember(peerId: PeerId): boolean;
  /** Sends a frame, connecting first if needed; resolves once the transport is done with it (see OpContext.send). */
  send(to: PeerId, frame: Uint8Array): Promise<void>;
  /** Sends a frame in the background (best effort). */
  post(to: PeerId, frame: Uint8Array): void;
  /** Keeps the link to a member open (not evicted) until the returned function is called. */
  pin(peerId: PeerId): () => void;
  /** Counts a frame of an operation already over here. */
  stale(from: PeerId): void;
}

/** A collective call, as the scheduler runs it. */
export interface StepSpec {
  kind: OpKind;
  /** The caller's tensor: written only on success. Absent for a barrier. */
  tensor: Float32Array | undefined;
  /** Reduction (0 sum, 1 mean) for all-reduce, the root for broadcast. */
  param: number | PeerId;
  elastic: boolean;
  codec: Codec;
  /** Error-feedback buffer of a compressed all-reduce (caller-owned, updated on success). */
  residual: Float32Array | undefined;
  timeoutMs: number | undefined;
}

/** The result of a completed operation, kept to send to members that are still at it. */
interface Completed {
  seq: number;
  kind: OpKind;
  group: number;
  length: number;
  /** The attempt that completed here; undefined when the result came from another member. */
  view: number | undefined;
  contributors: PeerId[];
  result: Float32Array;
  /** Views already sent the result, per member. */
  served: Set<string>;
}

interface Step {
  seq: number;
  kind: OpKind;
  base: PeerId[];
  group: number;
  elastic: boolean;
  lost: Set<PeerId>;
  /** The member that told us the operation goes on without us (its link to us failed), if one did. */
  leftOutBy: PeerId | undefined;
  /** The latest READY of this operation from each member (any attempt). */
  readies: Map<PeerId, ReadyFrame>;
  op: CollectiveOp | undefined;
  /** The running attempt was cancelled because a member was lost: start another one. */
  retry: boolean;
  /** Set once the operation cannot succeed whatever happens (timeout, abort, close). */
  fatal: P2PTLSError | undefined;
}

type Early = { from: PeerId; frame: ReadyFrame | AbortFrame | LostFrame };

export class Scheduler {
  /** Whether our operation numbers are the mesh's: not before the first operation of a late joiner. */
  private synced: boolean;
  private startedSeq = -1;
  private step: Step | undefined;
  private completed: Completed | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private early: Early[] = [];
  private readonly abortsSeen = new Set<number>();
  private syncWait:
    | { ring: PeerId[]; resolve: (seq: number) => void; reject: (e: P2PTLSError) => void }
    | undefined;
  private closed: P2PTLSError | undefined;
  /** The members whose tensors made the last completed operation's result. */
  lastContributors: readonly PeerId[] = [];

  constructor(private readonly host: SchedulerHost) {
    this.synced = false;
  }

  /** We found the room empty: our operation numbers start the mesh's, nobody's to learn. */
  startsMesh(): void {
    this.synced = true;
  }

  /** Runs a collective after every earlier one; resolves with the members that contributed. */
  run(spec: StepSpec): Promise<readonly PeerId[]> {
    if (this.closed) return Promise.reject(this.closed);
    const p = this.tail.then(() => this.execute(spec));
    this.tail = p.catch(() => {});
    return p;
  }

  /** Fails the running operation and every queued one. */
  close(error: P2PTLSError): void {
    this.closed = error;
    this.syncWait?.reject(error);
    const step = this.step;
    if (step) {
      step.fatal = error;
      step.op?.fail(error);
    }
  }

  /**
   * A member left the mesh. Strict: an operation over it fails. Elastic: only its ring neighbours, whose
   * links to it fail, report it (linkLost) — the others cannot tell a member that is gone from one that
   * only lost the signaling server.
   */
  left(peerId: PeerId, cause: P2PTLSError): void {
    const step = this.step;
    if (step && !step.elastic && step.base.includes(peerId)) {
      step.op?.fail(memberLost(peerId, step.op.name, cause));
    } else this.linkLost(peerId, cause);
  }

  /** The link to `peerId` failed: an operation that uses it fails (strict) or goes on without it. */
  linkLost(peerId: PeerId, cause: P2PTLSError): void {
    const step = this.step;
    const op = step?.op;
    if (!op?.isRunning || (op.prev !== peerId && op.next !== peerId)) return;
    if (!step!.elastic) {
      op.fail(memberLost(peerId, op.name, cause));
      return;
    }
    debug('%s #%d: lost %s (%s)', this.host.room, step!.seq, shortId(peerId), cause.message);
    this.exclude(step!, peerId, undefined);
  }

  /** A member sent a frame that was refused: the operation it belongs to cannot be trusted. */
  refused(peerId: PeerId, error: P2PTLSError): void {
    const op = this.step?.op;
    if (op?.isRunning && op.ring.includes(peerId)) op.fail(error);
  }

  /** Handles a collective frame; throws `unexpected_message` for one that fits nothing. */
  onFrame(from: PeerId, frame: Exclude<MeshFrame, { type: typeof FrameType.DATA }>): void {
    const step = this.step?.seq === frame.seq ? this.step : undefined;
    const past = this.synced && frame.seq <= this.startedSeq;
    if (frame.type === FrameType.READY) {
      if (step) this.onReady(step, from, frame);
      else if (this.completed?.seq === frame.seq) this.serve(from, frame);
      else this.keepEarly(from, frame);
    } else if (frame.type === FrameType.CHUNK || frame.type === FrameType.RESULT) {
      const op = step?.op;
      if (op && frame.view === op.view) {
        if (frame.type === FrameType.CHUNK) op.onChunk(from, frame);
        else op.adoptResult(from, frame);
      } else if (step || past) this.host.stale(from);
      // Nobody may send chunks before we said READY for that operation.
      else throw fail('unexpected_message', `frame of operation #${frame.seq}, which has not started here`);
    } else if (!step) {
      this.keepEarly(from, frame);
    } else if (frame.type === FrameType.ABORT) {
      this.abortsSeen.add(frame.seq);
      step.fatal ??= fail('peer_error', frame.reason);
      step.op?.onAbort(from, frame.code, frame.reason);
    } else if (!step.elastic) {
      throw fail('unexpected_message', `LOST for strict operation #${frame.seq}`);
    } else this.exclude(step, frame.peerId, from);
  }

  private onReady(step: Step, from: PeerId, frame: ReadyFrame): void {
    step.readies.set(from, frame);
    const op = step.op;
    if (!op?.isRunning) return;
    if (!step.elastic) {
      op.onReady(from, frame);
      return;
    }
    const diff = op.mismatch(frame, false);
    if (diff) op.fail(fail('mesh_mismatch', `${op.name}: ${from} started it with ${diff}`));
    else if (from === op.next && frame.view === op.view) op.onReady(from, frame);
    // Otherwise it is for another attempt: kept, until we get there too.
  }

  /** A frame for an operation not running here: a straggler, or one we have not started yet. */
  private keepEarly(from: PeerId, frame: ReadyFrame | AbortFrame | LostFrame): void {
    if (this.synced && frame.seq <= this.startedSeq) {
      this.host.stale(from);
      return;
    }
    if (this.synced && frame.seq > this.startedSeq + MAX_SEQ_AHEAD) {
      throw fail('unexpected_message', `frame for operation #${frame.seq}; ours is #${this.startedSeq}`);
    }
    if (this.early.length >= MAX_EARLY_FRAMES) {
      throw fail(
        'unexpected_message',
        `more than ${MAX_EARLY_FRAMES} frames for operations not started here`,
      );
    }
    if (frame.type === FrameType.LOST) {
      const known = this.early.some(
        (e) =>
          e.frame.type === FrameType.LOST && e.frame.seq === frame.seq && e.frame.peerId === frame.peerId,
      );
      if (known) return;
      this.flood(this.host.ring(), encodeLost(frame), from, frame.peerId);
    }
    this.early.push({ from, frame });
    if (frame.type === FrameType.ABORT) this.forwardAbort(from, frame);
    if (frame.type === FrameType.READY && this.syncWait?.ring.includes(from))
      this.syncWait.resolve(frame.seq);
  }

  /** An abort for an operation not running here: pass it on so it goes round the ring. */
  private forwardAbort(from: PeerId, frame: AbortFrame): void {
    if (this.abortsSeen.has(frame.seq)) return;
    this.abortsSeen.add(frame.seq);
    this.flood(this.host.ring(), encodeAbort(frame), from);
  }

  /** Sends `bytes` to our neighbours in `ring` (with us in it), except `from` and `skip`. */
  private flood(ring: PeerId[], bytes: Uint8Array, from: PeerId | undefined, skip?: PeerId): void {
    const r = ring.indexOf(this.host.self);
    if (r < 0 || ring.length < 2) return;
    for (const to of new Set([ring[mod(r - 1, ring.length)]!, ring[mod(r + 1, ring.length)]!])) {
      if (to !== from && to !== skip && to !== this.host.self) this.host.post(to, bytes);
    }
  }

  /** Elastic: the operation goes on without `peerId`; everyone hears it, the attempt using it ends. */
  private exclude(step: Step, peerId: PeerId, from: PeerId | undefined): void {
    if (step.lost.has(peerId) || !step.base.includes(peerId)) return;
    step.lost.add(peerId);
    if (peerId === this.host.self) step.leftOutBy ??= from;
    const survivors = step.base.filter((p) => p === this.host.self || !step.lost.has(p));
    const frame = encodeLost({ seq: step.seq, peerId });
    this.flood(survivors, frame, from, peerId);
    // And to the member itself: one that is alive but was left out (its links failed) must learn it, or
    // it would wait for survivors that no longer answer its attempts.
    if (peerId !== this.host.self && peerId !== from) this.host.post(peerId, frame);
    const op = step.op;
    if (op?.isRunning && op.ring.includes(peerId)) {
      step.retry = true;
      op.cancel(fail('mesh_member_left', `${op.name}: going on without ${peerId}`));
    }
  }

  /** A member asks again for an operation that completed here: send it the result. */
  private serve(from: PeerId, frame: ReadyFrame): void {
    const c = this.completed!;
    const fits =
      frame.view !== c.view &&
      frame.kind === c.kind &&
      frame.group === c.group &&
      frame.elastic &&
      (frame.kind === OpKind.BARRIER || frame.length === c.length);
    if (!fits) {
      this.host.stale(from);
      return;
    }
    const key = `${from}/${frame.view}`;
    if (c.served.has(key)) return;
    c.served.add(key);
    debug('%s #%d: sending the result to %s, still at it', this.host.room, c.seq, from);
    void this.sendResult(from, c, frame.view, frame.length).catch(() => {});
  }

  private async sendResult(to: PeerId, c: Completed, view: number, length: number): Promise<void> {
    // A barrier's "result" is only that it completed: an empty tensor of the asker's length.
    const result = c.kind === OpKind.BARRIER ? new Float32Array(length) : c.result;
    const unpin = this.host.pin(to);
    try {
      await this.host.send(to, encodeResult({ seq: c.seq, view, length, contributors: c.contributors }));
      const step = this.host.chunkElements;
      for (let offset = 0; offset < result.length; offset += step) {
        const values = result.subarray(offset, Math.min(result.length, offset + step));
        const header = { phase: Phase.RESULT, codec: Codec.NONE, seq: c.seq, step: 0, offset, view };
        await this.host.send(to, encodeChunk(header, values));
      }
    } finally {
      unpin();
    }
  }

  /** A member that joined a running mesh takes its operation number from its first READY. */
  private syncSeq(ring: PeerId[], timeoutMs: number | undefined): Promise<number> {
    const known = this.early.find((e) => e.frame.type === FrameType.READY && ring.includes(e.from));
    if (known) return Promise.resolve(known.frame.seq);
    debug('%s: waiting for a READY to learn the operation number', this.host.room);
    return new Promise<number>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(
              () => done(fail('timeout', `no member started an operation within ${timeoutMs} ms`)),
              timeoutMs,
            );
      const done = (result: number | P2PTLSError) => {
        if (timer) clearTimeout(timer);
        this.syncWait = undefined;
        if (typeof result === 'number') resolve(result);
        else reject(result);
      };
      this.syncWait = { ring, resolve: done, reject: done };
    });
  }

  private async execute(spec: StepSpec): Promise<readonly PeerId[]> {
    if (this.closed) throw this.closed;
    const self = this.host.self;
    const base = this.host.ring();
    const seq =
      this.synced || base.length < 2 ? this.startedSeq + 1 : await this.syncSeq(base, spec.timeoutMs);
    if (!this.synced) {
      this.synced = true;
      this.early = this.early.filter((e) => e.frame.seq >= seq);
    }
    this.startedSeq = seq;
    const step: Step = {
      seq,
      kind: spec.kind,
      base,
      group: groupFingerprint(base),
      elastic: spec.elastic,
      lost: new Set(),
      leftOutBy: undefined,
      readies: new Map(),
      op: undefined,
      retry: false,
      fatal: undefined,
    };
    this.step = step;
    const timer =
      spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            step.fatal = fail('timeout', `operation #${seq} did not finish within ${spec.timeoutMs} ms`);
            step.op?.fail(step.fatal);
          }, spec.timeoutMs);
    try {
      let abort: { from: PeerId; frame: AbortFrame } | undefined;
      for (const { from, frame } of this.early.filter((e) => e.frame.seq === seq)) {
        if (frame.type === FrameType.READY) step.readies.set(from, frame);
        else if (frame.type === FrameType.LOST && spec.elastic) {
          step.lost.add(frame.peerId);
          if (frame.peerId === self) step.leftOutBy ??= from;
        } else if (frame.type === FrameType.ABORT) abort = { from, frame };
      }
      this.early = this.early.filter((e) => e.frame.seq > seq);
      if (spec.kind === OpKind.BROADCAST && !base.includes(spec.param as PeerId)) {
        const error = fail(
          'mesh_not_member',
          `broadcast root ${String(spec.param)} is not a member of ${this.host.room}`,
        );
        this.forwardAbort(self, { type: FrameType.ABORT, seq, code: error.code, reason: error.message });
        throw error;
      }
      // A member that left between the snapshot and now: do not wait for it.
      const gone = base.filter((m) => m !== self && !this.host.isMember(m));
      if (!spec.elastic && gone.length > 0) {
        throw fail('mesh_member_left', `operation #${seq}: ${gone[0]} left mesh ${this.host.room}`);
      }
      for (const m of gone) step.lost.add(m);
      for (;;) {
        const ring = base.filter((p) => !step.lost.has(p));
        if (!ring.includes(self)) {
          const why = step.leftOutBy ? `${step.leftOutBy} reported us lost` : 'our links to it failed';
          throw fail('mesh_member_left', `operation #${seq} went on without us (${why})`);
        }
        const rootRank = spec.kind === OpKind.BROADCAST ? ring.indexOf(spec.param as PeerId) : -1;
        if (spec.kind === OpKind.BROADCAST && rootRank < 0) {
          throw fail('mesh_member_left', `broadcast #${seq}: the root ${String(spec.param)} was lost`);
        }
        // Made again for every attempt from the caller's tensor and residual, which only change when
        // the operation succeeds: one working copy at a time, not a kept input plus a working copy.
        const input = this.input(spec);
        const work = spec.kind === OpKind.BARRIER ? new Float32Array(ring.length) : input.values;
        const op = new CollectiveOp(this.opContext(), {
          kind: spec.kind,
          seq,
          ring,
          group: step.group,
          view: spec.elastic ? groupFingerprint(ring) : step.group,
          codec: spec.codec,
          elastic: spec.elastic,
          tensor: work,
          param:
            spec.kind === OpKind.BROADCAST
              ? rootRank
              : spec.kind === OpKind.BARRIER
                ? 0
                : (spec.param as number),
        });
        step.op = op;
        step.retry = false;
        if (abort) op.onAbort(abort.from, abort.frame.code, abort.frame.reason);
        if (step.fatal) op.fail(step.fatal);
        const unpins = [op.prev, op.next]
          .filter((p): p is PeerId => p !== undefined)
          .map((p) => this.host.pin(p));
        try {
          op.start();
          for (const [from, frame] of step.readies) this.onReady(step, from, frame);
          await op.done;
        } catch (err) {
          if (step.retry && !step.fatal) {
            debug('%s #%d: new attempt without %o', this.host.room, seq, [...step.lost]);
            continue;
          }
          throw err;
        } finally {
          for (const unpin of unpins) unpin();
        }
        return this.finish(spec, step, op, input);
      }
    } finally {
      if (timer) clearTimeout(timer);
      if (this.step === step) this.step = undefined;
      for (const s of [...this.abortsSeen]) if (s < seq - MAX_SEQ_AHEAD) this.abortsSeen.delete(s);
    }
  }

  /** What this member contributes: a copy of the tensor (plus the residual, quantised, if compressed). */
  private input(spec: StepSpec): { values: Float32Array; residual: Float32Array | undefined } {
    if (!spec.tensor) return { values: new Float32Array(0), residual: undefined };
    const values = spec.tensor.slice();
    if (!spec.residual || spec.codec === Codec.NONE) return { values, residual: undefined };
    // Error feedback: send Q(x + e) and keep e' = (x + e) − Q(x + e) for the next step.
    for (let i = 0; i < values.length; i++) values[i]! += spec.residual[i]!;
    const corrected = values.slice();
    roundTrip(spec.codec, values);
    for (let i = 0; i < values.length; i++) corrected[i] = corrected[i]! - values[i]!;
    return { values, residual: corrected };
  }

  private finish(
    spec: StepSpec,
    step: Step,
    op: CollectiveOp,
    input: { residual: Float32Array | undefined },
  ): readonly PeerId[] {
    const contributors = op.adopted?.contributors ?? [...op.ring];
    const result = op.tensor;
    // An adopted result is already the sender's final tensor (its mean included).
    if (spec.kind === OpKind.ALL_REDUCE && spec.param === 1 && !op.adopted) {
      const inv = 1 / contributors.length;
      for (let i = 0; i < result.length; i++) result[i]! *= inv;
    }
    if (spec.tensor && spec.kind !== OpKind.BARRIER) spec.tensor.set(result);
    if (spec.residual && input.residual) spec.residual.set(input.residual);
    this.lastContributors = contributors;
    if (spec.elastic) {
      this.completed = {
        seq: step.seq,
        kind: spec.kind,
        group: step.group,
        length: result.length,
        view: op.adopted ? undefined : op.view,
        contributors,
        result,
        served: new Set(),
      };
      // Those still at it; not the members this operation lost (a dead one's READY is of no use).
      for (const [from, frame] of step.readies) if (!step.lost.has(from)) this.serve(from, frame);
    }
    return contributors;
  }

  private opContext(): OpContext {
    return {
      self: this.host.self,
      send: (to, frame) => this.host.send(to, frame),
      sendAbort: (to, frame) => this.host.post(to, frame),
      lost: (peer, cause) => this.linkLost(peer, cause),
      chunkElements: this.host.chunkElements,
      window: this.host.window,
    };
  }
}
