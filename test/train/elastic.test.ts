// Training that survives its members: 4 Node members (each a real process); one is SIGKILLed
// mid-training and the other three carry on, the loss still falling, nobody hanging.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Identity } from '../../src/identity/index.js';
import { toBase64Url } from '../../src/util/bytes.js';
import { type Env, startEnv } from '../helpers/hosts.js';
import { type ManagedProcess, ROOT, spawnProcess } from '../helpers/processes.js';
import type { TrainWorkerConfig } from './train-worker.js';

const HEARTBEAT = { heartbeatIntervalMs: 250, heartbeatTimeoutMs: 2_000 };

interface StepLine {
  step: number;
  loss: number;
  members: number;
}

function steps(w: ManagedProcess): StepLine[] {
  const out: StepLine[] = [];
  for (const l of w.lines) {
    const m = l.match(/^out: step (\d+) loss (\S+) acc \S+ members (\d+)/);
    if (m) out.push({ step: Number(m[1]), loss: Number(m[2]), members: Number(m[3]) });
  }
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('elastic data-parallel training', () => {
  let env: Env;
  before(async () => {
    env = await startEnv(5);
  });
  after(async () => {
    await env?.close();
  });

  async function worker(
    me: Identity,
    room: string,
    shard: number,
    options: Partial<TrainWorkerConfig>,
  ): Promise<ManagedProcess> {
    const config: TrainWorkerConfig = {
      url: env.url,
      room,
      identity: await me.exportSecret(),
      peers: env.ids
        .filter((p) => p !== me)
        .map((p) => ({ identity: p.exportPublic(), psk: toBase64Url(env.psk(me, p)) })),
      waitFor: 4,
      seed: 5,
      shard,
      batch: 32,
      learningRate: 0.02,
      compression: 'none',
      maxSteps: 2_000,
      timeoutMs: 20_000,
      ...HEARTBEAT,
      ...options,
    };
    const p = spawnProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'test/train/train-worker.ts')], {
      env: { P2PTLS_TRAIN_WORKER: JSON.stringify(config) },
    });
    env.defer(() => p.kill(0));
    return p;
  }

  it('a member SIGKILLed mid-training: the other three finish and the loss keeps falling', async (t) => {
    const ids = env.ids.slice(0, 4);
    // Stop 40 steps after the first step the group ran with 3 members (the same step everywhere).
    const stop = { when: 'at-most' as const, members: 3, after: 40 };
    const workers = await Promise.all(ids.map((id, i) => worker(id, 'kill', i, { stop })));
    try {
      const [victim, ...rest] = workers as [ManagedProcess, ...ManagedProcess[]];
      await victim.waitForLine(/^step 30 /, 120_000);
      victim.child.kill('SIGKILL');
      const killedAt = performance.now();
      const done = await Promise.all(rest.map((w) => w.waitForLine(/^done (\d+) (\w+)$/, 120_000)));
      t.diagnostic(`survivors done ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
      // Everyone ended on the same step with the same parameters.
      assert.equal(new Set(done.map((d) => d[1])).size, 1, `different last steps: ${done.map((d) => d[1])}`);
      assert.equal(new Set(done.map((d) => d[2])).size, 1, 'survivors hold different parameters');
      for (const w of rest) {
        const log = steps(w);
        const before = log.filter((s) => s.members === 4);
        const afterKill = log.filter((s) => s.members === 3);
        assert.ok(before.length >= 30, `only ${before.length} steps with 4 members`);
        assert.ok(afterKill.length >= 40, `only ${afterKill.length} steps with 3 members`);
        // Step numbers are contiguous: no step was skipped or done twice.
        for (const [i, s] of log.entries()) assert.equal(s.step, log[0]!.step + i);
        const lossBefore = mean(before.slice(-10).map((s) => s.loss));
        const lossAfter = mean(afterKill.slice(-10).map((s) => s.loss));
        t.diagnostic(
          `loss: last 10 steps with 4 members ${lossBefore.toFixed(4)}, last 10 with 3 ${lossAfter.toFixed(4)}`,
        );
        assert.ok(lossAfter < lossBefore, `loss rose after the kill: ${lossBefore} → ${lossAfter}`);
      }
    } finally {
      await Promise.all(workers.map((w) => w.kill(0)));
    }
  });
});
