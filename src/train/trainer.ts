/**
 * Data-parallel training of a TensorFlow.js model over a mesh (docs/TRAINING.md). Each step, on every
 * member:
 *   1. the step header (./header.ts), a small sum all-reduce: the members agree on the step number, the
 *      compression in force and who holds the current parameters;
 *   2. if anyone is behind (a joiner, a member whose last step failed, or everyone on the very first
 *      step), the lowest up-to-date member broadcasts its parameters and optimizer state
 *      (`broadcastTensor`), so every member starts the step from the same bits;
 *   3. each member computes the gradients of its own batch into one flat Float32Array, with the batch
 *      loss and metric appended, and the mesh averages it (`allReduce(mean)`, compressed if chosen);
 *   4. every member applies the averaged gradients with its own optimizer: same bits in, same bits out.
 * A collective that fails (a member lost mid-operation in strict mode, a mismatch while membership
 * changes, a timeout) makes the member retry the whole step from the header; the header's step numbers
 * put a member that fell behind back in line. Members must therefore only ever call `step` in a loop,
 * like any collective.
 */
import * as tf from '@tensorflow/tfjs';
import { asP2PTLSError, type ErrorCode, fail } from '../errors.js';
import { logger, shortId } from '../util/log.js';
import { flattenInto, layoutOf, unflatten } from './flat.js';
import { type Compression, decodeHeader, encodeHeader, type Setting, settingKey } from './header.js';

const log = logger('train');

/** What the trainer needs from a mesh (`Mesh` from p2ptls has it all). */
export interface TrainingMesh {
  readonly peerId: string;
  /** Members including us, sorted: what the next collective runs over. */
  readonly ring: readonly string[];
  /** Whose tensors the last all-reduce's result is made of (an elastic mesh may leave lost ones out). */
  readonly lastContributors?: readonly string[];
  allReduce(
    tensor: Float32Array,
    op: 'sum' | 'mean',
    options?: { timeoutMs?: number; compression?: Compression; residual?: Float32Array },
  ): Promise<Float32Array>;
  broadcastTensor(
    root: string,
    tensor: Float32Array,
    options?: { timeoutMs?: number },
  ): Promise<Float32Array>;
  /** Membership events: a failed step is tried again as soon as the membership changed. */
  on(event: 'joined' | 'left', listener: (e: { peerId: string }) => void): () => void;
}

export interface DataParallelOptions {
  model: tf.LayersModel;
  optimizer: tf.Optimizer;
  /** Mean loss of a batch, e.g. `tf.losses.softmaxCrossEntropy`. */
  loss: (labels: tf.Tensor, predictions: tf.Tensor) => tf.Scalar;
  /** A metric averaged and reported like the loss (e.g. accuracy), or none. */
  metric?: (labels: tf.Tensor, predictions: tf.Tensor) => tf.Scalar;
  /** Gradient compression this member asks for (default 'none'); see {@link DataParallel.setCompression}. */
  compression?: Compression;
  /** Bound of each collective operation (default 60 000 ms): a step never waits longer than that per try. */
  timeoutMs?: number;
  /**
   * How long a step keeps trying after failed tries before it rejects with the last error (default
   * 120 000 ms). Members' views of who left can differ for up to a heartbeat timeout (10 s by default):
   * until they agree, tries fail with `mesh_mismatch`.
   */
  retryForMs?: number;
}

/** What one step did, the same on every member except the times. */
export interface StepReport {
  /** The step number (0 first), agreed by the header. */
  step: number;
  /** Loss and metric averaged over the members' batches. */
  loss: number;
  metric: number;
  /** The members that started the step (took part in its header), sorted. */
  members: string[];
  /** The members whose gradients were averaged (fewer than `members` if one was lost mid-exchange). */
  averaged: string[];
  /** Members that received the parameters before this step, and from whom. */
  synced: string[];
  root: string;
  compression: Compression;
  /** 1 unless a collective failed and the step was retried. */
  attempts: number;
  /** Time of this step here: total, gradient computation, and the gradient exchange. */
  ms: { total: number; compute: number; exchange: number };
  /** Every member's last step time as it reported in the header (ms). */
  memberStepMs: Record<string, number>;
}

/** Errors after which the step is tried again: the membership changed under it. */
const RETRYABLE = new Set<ErrorCode>(['mesh_member_left', 'mesh_mismatch', 'mesh_not_member', 'timeout']);

type State = 'fresh' | 'ready' | 'stepping' | 'closed';

interface Layouts {
  grads: ReturnType<typeof layoutOf>;
  /** Model weights then optimizer weights: what a joiner receives. */
  stateSize: number;
}

export class DataParallel {
  private state: State = 'fresh';
  /** The step this member is about to take (valid once it holds parameters). */
  private nextStep = 0;
  private hasParams = false;
  private setting: Setting;
  private lastStepMs = 0;
  private residual: Float32Array | undefined;
  private layouts: Layouts | undefined;
  private readonly trainable: tf.Variable[];
  private readonly weights: tf.Variable[];
  private readonly timeoutMs: number;
  private readonly retryForMs: number;

  constructor(
    private readonly mesh: TrainingMesh,
    private readonly options: DataParallelOptions,
  ) {
    this.setting = { version: 0, compression: options.compression ?? 'none' };
    this.trainable = options.model.trainableWeights.map((w) => w.read() as tf.Variable);
    this.weights = options.model.weights.map((w) => w.read() as tf.Variable);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.retryForMs = options.retryForMs ?? 120_000;
  }

  /** The step the group is at (the next one this member takes). */
  get currentStep(): number {
    return this.nextStep;
  }

  /** The compression this member currently asks for and uses (adopted from the group's header). */
  get compression(): Compression {
    return this.setting.compression;
  }

  /**
   * Asks the group to switch compression. The choice travels in the next step header; the newest
   * choice of any member wins, from that step on, for everyone.
   */
  setCompression(compression: Compression): void {
    this.setting = { version: this.setting.version + 1, compression };
  }

  /** This member's parameters and optimizer state, flat (what a joiner receives). */
  async exportState(): Promise<Float32Array> {
    const layouts = await this.prepare();
    const out = new Float32Array(layouts.stateSize);
    await this.writeState(out);
    return out;
  }

  /**
   * One data-parallel step on this member's batch (`x`, `y`). Resolves once the averaged gradients
   * are applied; rejects with the last error once tries failed for `retryForMs`, or `closed`.
   */
  async step(x: tf.Tensor, y: tf.Tensor): Promise<StepReport> {
    if (this.state === 'closed') throw fail('closed', 'trainer closed');
    if (this.state === 'stepping') throw fail('invalid_argument', 'one step at a time');
    const previous = this.state;
    this.state = 'stepping';
    try {
      const layouts = await this.prepare();
      const started = performance.now();
      for (let attempt = 1; ; attempt++) {
        const ring = [...this.mesh.ring];
        try {
          const report = await this.attempt(layouts, x, y, attempt);
          this.state = 'ready';
          return report;
        } catch (err) {
          const e = asP2PTLSError(err, 'closed');
          if (this.state !== 'stepping' || !RETRYABLE.has(e.code)) throw e;
          if (performance.now() - started > this.retryForMs) throw e;
          await this.membershipSettles(ring, attempt);
          log(
            '%s: step %d try %d failed (%s: %s), trying again',
            shortId(this.mesh.peerId),
            this.nextStep,
            attempt,
            e.code,
            e.message,
          );
        }
      }
    } finally {
      if (this.state === 'stepping') this.state = this.hasParams ? 'ready' : previous;
    }
  }

  /**
   * Before another try: returns once the membership changed from `ring` (a join or leave event, or it
   * already differs), or after a backoff (50 ms doubling to 2 s) that only paces tries while the change
   * is elsewhere (a member whose view still lags behind ours).
   */
  private membershipSettles(ring: readonly string[], attempt: number): Promise<void> {
    const now = this.mesh.ring;
    if (now.length !== ring.length || now.some((p, i) => p !== ring[i])) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        offLeft();
        offJoined();
        resolve();
      };
      const timer = setTimeout(done, Math.min(2_000, 50 * 2 ** (attempt - 1)));
      const offLeft = this.mesh.on('left', done);
      const offJoined = this.mesh.on('joined', done);
    });
  }

  /** Stops: a step in progress rejects with `closed` once its current operation ends. */
  close(): void {
    this.state = 'closed';
  }

  private async attempt(layouts: Layouts, x: tf.Tensor, y: tf.Tensor, attempt: number): Promise<StepReport> {
    const t0 = performance.now();
    const self = this.mesh.peerId;
    const ring = [...this.mesh.ring];
    const header = encodeHeader(ring, self, {
      step: this.hasParams ? this.nextStep : -1,
      setting: this.setting,
      stepMs: this.lastStepMs,
    });
    await this.mesh.allReduce(header, 'sum', { timeoutMs: this.timeoutMs });
    this.checkOpen();
    const plan = decodeHeader(ring, header);
    // Adopt the group's setting only if it is newer than ours: setCompression() may have run while the
    // header was on the wire, and that newer request must go into the next header, not be overwritten.
    // This step uses the group's setting either way (the same on every member).
    if (settingKey(plan.setting) > settingKey(this.setting)) this.setting = plan.setting;
    if (plan.behind.length > 0) {
      const stateVec = new Float32Array(layouts.stateSize);
      if (plan.root === self) await this.writeState(stateVec);
      await this.mesh.broadcastTensor(plan.root, stateVec, { timeoutMs: this.timeoutMs });
      this.checkOpen();
      // Every member loads the state, the root and the up-to-date ones too: what an optimizer derives
      // when it loads must be derived alike everywhere. Adam recomputes beta^(t+1) with pow on load,
      // where its updates multiply by beta step by step (float32: 0.999^41 is 0.95980996 by pow,
      // 0.95980990 by 40 products), so a joiner alone loading ended 30 steps later with other bits.
      await this.readState(stateVec);
      if (plan.behind.includes(self)) {
        // Our residual belonged to parameters we no longer hold.
        this.residual?.fill(0);
        log('%s: took the state of step %d from %s', shortId(self), plan.step, shortId(plan.root));
      }
    }
    this.hasParams = true;
    this.nextStep = plan.step;

    const t1 = performance.now();
    const size = layouts.grads.size;
    const flat = new Float32Array(size + 2);
    await this.gradients(x, y, flat);
    const t2 = performance.now();
    const compression = plan.setting.compression;
    let residual: Float32Array | undefined;
    if (compression !== 'none') {
      if (this.residual?.length !== flat.length) this.residual = new Float32Array(flat.length);
      residual = this.residual;
    }
    await this.mesh.allReduce(flat, 'mean', {
      timeoutMs: this.timeoutMs,
      compression,
      ...(residual ? { residual } : {}),
    });
    const averaged = [...(this.mesh.lastContributors ?? plan.present)].sort();
    this.checkOpen();
    const t3 = performance.now();
    const mean = unflatten(tf, layouts.grads, flat);
    this.options.optimizer.applyGradients(mean);
    tf.dispose(mean);
    this.nextStep = plan.step + 1;
    const t4 = performance.now();
    this.lastStepMs = t4 - t0;
    const memberStepMs: Record<string, number> = {};
    for (const [p, h] of plan.members) memberStepMs[p] = h.stepMs;
    memberStepMs[self] = this.lastStepMs;
    return {
      step: plan.step,
      loss: flat[size]!,
      metric: flat[size + 1]!,
      members: plan.present,
      averaged,
      synced: plan.behind,
      root: plan.root,
      compression,
      attempts: attempt,
      ms: { total: t4 - t0, compute: t2 - t1, exchange: t3 - t2 },
      memberStepMs,
    };
  }

  private checkOpen(): void {
    if (this.state === 'closed') throw fail('closed', 'trainer closed');
  }

  /** Loss gradients of the batch into `out`, then the batch loss and metric in its last two slots. */
  private async gradients(x: tf.Tensor, y: tf.Tensor, out: Float32Array): Promise<void> {
    const { model, optimizer, loss, metric } = this.options;
    let predictions: tf.Tensor | undefined;
    const { value, grads } = optimizer.computeGradients(() => {
      const p = model.apply(x, { training: true }) as tf.Tensor;
      predictions = tf.keep(p);
      return loss(y, p);
    }, this.trainable);
    try {
      await flattenInto(
        this.layouts!.grads,
        this.layouts!.grads.names.map((n) => grads[n]!),
        out,
      );
      const size = this.layouts!.grads.size;
      out[size] = (await value.data())[0]!;
      if (metric && predictions) {
        const m = metric(y, predictions);
        out[size + 1] = (await m.data())[0]!;
        m.dispose();
      }
    } finally {
      tf.dispose([value, grads, predictions].filter((t) => t !== undefined) as tf.TensorContainer[]);
    }
  }

  /**
   * Lays out the gradient vector and the state vector. The optimizer's state is created by one update
   * with zero gradients, then reset to its initial values: so that a member that never stepped has the
   * same state layout as one that did, and can receive it.
   */
  private async prepare(): Promise<Layouts> {
    if (this.layouts) return this.layouts;
    const { optimizer } = this.options;
    const zeros: tf.NamedTensorMap = {};
    for (const v of this.trainable) zeros[v.name] = tf.zerosLike(v);
    optimizer.applyGradients(zeros);
    tf.dispose(zeros);
    const created = await optimizer.getWeights();
    await optimizer.setWeights(created.map((w) => ({ name: w.name, tensor: tf.zerosLike(w.tensor) })));
    let stateSize = 0;
    for (const w of this.weights) stateSize += w.size;
    for (const w of await optimizer.getWeights()) stateSize += w.tensor.size;
    this.layouts = { grads: layoutOf(this.trainable), stateSize };
    return this.layouts;
  }

  private async writeState(out: Float32Array): Promise<void> {
    let at = 0;
    for (const w of this.weights) {
      out.set((await w.data()) as Float32Array, at);
      at += w.size;
    }
    for (const w of await this.options.optimizer.getWeights()) {
      out.set(Float32Array.from(await w.tensor.data()), at);
      at += w.tensor.size;
    }
  }

  private async readState(state: Float32Array): Promise<void> {
    let at = 0;
    for (const w of this.weights) {
      const from = at;
      tf.tidy(() => w.assign(tf.tensor(state.subarray(from, from + w.size), w.shape, w.dtype)));
      at += w.size;
    }
    const current = await this.options.optimizer.getWeights();
    const next = current.map((w) => {
      const values = state.subarray(at, at + w.tensor.size);
      at += w.tensor.size;
      return { name: w.name, tensor: tf.tensor(values, w.tensor.shape, w.tensor.dtype) };
    });
    await this.options.optimizer.setWeights(next);
  }
}
