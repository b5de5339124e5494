// The Train page: two browser tabs (two browser contexts, so two identities) and one Node worker, paired
// through the demo's invites, train the spiral MLP together in one mesh room to a loss threshold (real
// Chromium, real `npm start` signaling server, WebRTC on loopback). One tab is closed mid-training: the
// other tab and the worker go on without it and both finish, on the same step. The compression switch
// of one tab switches the group.
import * as tf from '@tensorflow/tfjs';
import type { Host } from '../../src/host/host.js';
import { Identity, joinMesh, openMemoryPeerStore, SignalingClient, startNodeHost } from '../../src/node.js';
import {
  accuracy,
  batchOf,
  crossEntropy,
  DataParallel,
  type StepReport,
  spiralModel,
  spiralShard,
} from '../../src/train/index.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { type DemoPeer, expect, test } from './demo-fixtures.js';

const ROOM = 'train-e2e';
// Reached after ~70–100 steps: time for the switch and the close below to land mid-training.
const TARGET = 0.25;

/** The worker redeems an invite from the page, whose user approves. */
async function pair(page: DemoPeer, host: Host): Promise<void> {
  const link = await page.createInvite();
  const paired = host.pair(new URL(link).searchParams.get('invite') ?? '');
  await page.answerPairing('Approve');
  expect((await paired).publicIdentity.peerId).toBe(page.peerId);
  await expect(page.peerItem(host.peerId)).toBeVisible();
}

/**
 * The Node member: the page's training loop (web-demo/src/train/session.ts) in this process, stopping
 * by the same rule (mean loss of the last 10 steps under the target, which every member sees alike).
 */
async function nodeMember(host: Host): Promise<StepReport[]> {
  const mesh = await joinMesh(host, ROOM);
  await mesh.waitForMembers(3, 120_000);
  const shard = spiralShard(42, mesh.ring.indexOf(mesh.peerId), 512);
  const trainer = new DataParallel(mesh, {
    model: spiralModel(42),
    optimizer: tf.train.adam(0.02),
    loss: crossEntropy,
    metric: accuracy,
  });
  const reports: StepReport[] = [];
  for (;;) {
    const { x, y } = batchOf(shard, trainer.currentStep, 32);
    reports.push(await trainer.step(x, y));
    tf.dispose([x, y]);
    const recent = reports.slice(-10).map((r) => r.loss);
    if (recent.length === 10 && recent.reduce((a, b) => a + b, 0) / 10 < TARGET) return reports;
    if (reports.length > 2000) throw new Error('no convergence in 2000 steps');
  }
}

test('two tabs and a Node worker train together; closing one tab lets the other two finish', async ({
  newPeer,
  demo,
}) => {
  test.setTimeout(360_000);
  tf.enableProdMode();
  await tf.setBackend('cpu');
  const a = await newPeer('a');
  const b = await newPeer('b');
  const link = await a.createInvite();
  await b.openInvite(link);
  await a.answerPairing('Approve');
  await expect(a.peerItem(b.peerId)).toBeVisible();

  const identity = await Identity.generate();
  const host = await startNodeHost({
    identity,
    peers: await openMemoryPeerStore(),
    // The server listens on 127.0.0.1; Node may resolve "localhost" to ::1 first.
    signaling: new SignalingClient({ url: demo.origin.replace('localhost', '127.0.0.1'), identity }),
    candidateFilter: loopbackOnly,
  });
  try {
    await pair(a, host);
    await pair(b, host);
    const worker = nodeMember(host);
    worker.catch(() => {});

    for (const peer of [a, b]) {
      await peer.page.goto(`${demo.origin}/train.html?room=${ROOM}&members=3&target=${TARGET}`);
      await expect(peer.page.getByTestId('start')).toBeEnabled({ timeout: 60_000 });
      await peer.page.getByTestId('start').click();
    }
    const status = a.page.getByTestId('train-status');
    await expect(status).toHaveAttribute('data-state', 'training', { timeout: 60_000 });
    // The compression switch on one tab switches the whole group, the Node worker included.
    await a.page.getByTestId('compression').selectOption('int8');
    await expect(a.page.getByTestId('compression-used')).toHaveText('int8');
    await expect(b.page.getByTestId('compression-used')).toHaveText('int8');
    await a.expectEvent(/the group's gradients travel as int8/);
    await expect(a.page.getByTestId('member')).toHaveCount(3);
    // Training for real, with all three members, then one tab goes away.
    await expect
      .poll(async () => Number(await status.getAttribute('data-step')), { timeout: 120_000 })
      .toBeGreaterThanOrEqual(15);
    await a.screenshot('10-train-three-members');
    await b.page.close();
    const reports = await worker;
    await expect(status).toHaveAttribute('data-state', 'done', { timeout: 120_000 });
    const last = reports.at(-1)!;
    await expect(status).toContainText(`at step ${last.step}, with 2 members`);
    await expect(
      a.page.locator(`[data-testid="member"][data-peer="${b.peerId}"]`).getByTestId('member-status'),
    ).toHaveText('left');
    await a.expectEvent(/ran over 2 members without/);
    // The loss fell on the way: the last 10 steps against the first 10.
    const mean = (rs: StepReport[]) => rs.reduce((s, r) => s + r.loss, 0) / rs.length;
    expect(mean(reports.slice(-10))).toBeLessThan(TARGET);
    expect(mean(reports.slice(0, 10))).toBeGreaterThan(mean(reports.slice(-10)));
    expect(reports.some((r) => r.members.length === 3)).toBe(true);
    expect(last.members).toEqual([a.peerId, identity.peerId].sort());
    expect(last.compression).toBe('int8');
    await a.screenshot('11-train-member-left');
  } finally {
    await host.close();
  }
});
