/**
 * One training run of the Train page: waits for the wanted number of members, then steps
 * `DataParallel` until the loss (mean of the last 10 steps, the same on every member) is under the
 * target, or the user stops. States: idle → waiting → training → done | stopped | failed.
 */
import * as tf from '@tensorflow/tfjs';
import type { Mesh } from '../../../src/browser.js';
import {
  accuracy,
  batchOf,
  type Compression,
  crossEntropy,
  DataParallel,
  type StepReport,
  spiralModel,
  spiralShard,
} from '../../../src/train/index.js';

export type RunState = 'idle' | 'waiting' | 'training' | 'done' | 'stopped' | 'failed';

export interface RunOptions {
  members: number;
  lossTarget: number;
  maxSteps: number;
  compression: Compression;
}

export interface RunEvents {
  state(state: RunState, detail: string): void;
  step(report: StepReport, smoothedLoss: number): void;
}

const SEED = 42;
const BATCH = 32;
const WINDOW = 10;

export class TrainingRun {
  private state: RunState = 'idle';
  private trainer: DataParallel | undefined;

  constructor(
    private readonly mesh: Mesh,
    private readonly events: RunEvents,
  ) {}

  get current(): RunState {
    return this.state;
  }

  setCompression(c: Compression): void {
    this.trainer?.setCompression(c);
  }

  stop(): void {
    if (this.state !== 'waiting' && this.state !== 'training') return;
    this.trainer?.close();
    this.set('stopped', 'Stopped.');
  }

  async run(options: RunOptions): Promise<void> {
    if (this.state === 'waiting' || this.state === 'training') return;
    this.set('waiting', `Waiting for ${options.members} members (${this.mesh.ring.length} here)…`);
    const off = this.mesh.on('joined', () => {
      if (this.is('waiting')) {
        this.set('waiting', `Waiting for ${options.members} members (${this.mesh.ring.length} here)…`);
      }
    });
    try {
      await this.mesh.waitForMembers(options.members, 24 * 3600_000);
    } finally {
      off();
    }
    // stop() may have run while we waited.
    if (!this.is('waiting')) return;
    // Each member its own shard: its place in the ring when training starts.
    const shard = spiralShard(SEED, this.mesh.ring.indexOf(this.mesh.peerId), 512);
    const trainer = new DataParallel(this.mesh, {
      model: spiralModel(SEED),
      optimizer: tf.train.adam(0.02),
      loss: crossEntropy,
      metric: accuracy,
      compression: options.compression,
    });
    this.trainer = trainer;
    this.set('training', 'Training…');
    const recent: number[] = [];
    try {
      while (this.is('training') && trainer.currentStep < options.maxSteps) {
        const { x, y } = batchOf(shard, trainer.currentStep, BATCH);
        let report: StepReport;
        try {
          report = await trainer.step(x, y);
        } finally {
          tf.dispose([x, y]);
        }
        recent.push(report.loss);
        if (recent.length > WINDOW) recent.shift();
        const smoothed = recent.reduce((a, b) => a + b, 0) / recent.length;
        this.events.step(report, smoothed);
        if (recent.length === WINDOW && smoothed < options.lossTarget) {
          this.set(
            'done',
            `Done: loss ${smoothed.toFixed(3)} (mean of the last ${WINDOW} steps) is under ${options.lossTarget} at step ${report.step}, with ${report.members.length} members.`,
          );
          return;
        }
      }
      if (this.is('training')) this.set('done', `Done: ${options.maxSteps} steps.`);
    } catch (err) {
      if (this.is('training'))
        this.set('failed', `Training failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Reads the state afresh (it changes across awaits, through stop()). */
  private is(state: RunState): boolean {
    return this.state === state;
  }

  private set(state: RunState, detail: string): void {
    this.state = state;
    this.events.state(state, detail);
  }
}
