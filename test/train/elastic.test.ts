// Training that survives its members: 4 Node members (each a real process); one is SIGKILLed
// mid-training and the other three carry on, the loss still falling, nobody hanging; a fifth member
// joins mid-training and ends with parameters and optimizer state bit-identical to the others'.
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
  attempts: number;
  ms: number;
}

function steps(w: ManagedProcess): StepLine[] {
  const out: StepLine[] = [];
  for (const l of w.lines) {
    const m = l.match(/^out: step (\d+) loss (\S+) acc \S+ members (\d+) attempts (\d+) ms (\S+)/);
    if (m) {
      out.push({
        step: Number(m[1]),
        loss: Number(m[2]),
        members: Number(m[3]),
        attempts: Number(m[4]),
        ms: Number(m[5]),
      });
    }
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
        const first = afterKill[0]!;
        t.diagnostic(
          `first step without the killed member: #${first.step}, ${first.attempts} tries, ${first.ms} ms ` +
            `(steps with 4 members: median ${before.map((s) => s.ms).sort((x, y) => x - y)[before.length >> 1]} ms)`,
        );
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

  it('a fifth member joins mid-training and ends bit-identical to the others', async (t) => {
    const ids = env.ids.slice(0, 5);
    // Stop 30 steps after the first step with all 5 members.
    const stop = { when: 'at-least' as const, members: 5, after: 30 };
    const first = await Promise.all(ids.slice(0, 4).map((id, i) => worker(id, 'join', i, { stop })));
    const workers = [...first];
    try {
      await first[0]!.waitForLine(/^step 20 /, 120_000);
      const joiner = await worker(ids[4]!, 'join', 4, { stop, waitFor: 1 });
      workers.push(joiner);
      const done = await Promise.all(workers.map((w) => w.waitForLine(/^done (\d+) (\w+)$/, 180_000)));
      const joined = steps(joiner);
      t.diagnostic(`the joiner's first step: ${joined[0]?.step}; last: ${done[4]![1]}`);
      assert.ok(joined[0]!.step > 20, `the joiner started at step ${joined[0]!.step}`);
      assert.ok(joined.every((s) => s.members === 5));
      assert.equal(new Set(done.map((d) => d[1])).size, 1, `different last steps: ${done.map((d) => d[1])}`);
      assert.equal(new Set(done.map((d) => d[2])).size, 1, 'the joiner holds different parameters');
    } finally {
      await Promise.all(workers.map((w) => w.kill(0)));
    }
  });
});
