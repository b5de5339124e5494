// The web demo between two browsers (two contexts = two IndexedDBs = two peers), driven through its UI.
import { createHash, randomBytes } from 'node:crypto';
import { expect, test } from './demo-fixtures.js';

test('browser ↔ browser: identity, invite, approval, chat, file with hash check, webcam over SLLP', async ({
  newPeer,
}) => {
  const alice = await newPeer('alice');
  const bob = await newPeer('bob');
  expect(alice.peerId).not.toBe(bob.peerId);
  await alice.screenshot('1-identity');

  const link = await alice.createInvite();
  expect(link).toContain('invite=');
  await expect(alice.page.getByLabel('Invite QR code')).toBeVisible();
  await alice.screenshot('2-invite');

  await bob.openInvite(link);
  await expect(alice.page.getByTestId('pairing-dialog')).toContainText(bob.peerId);
  await expect(alice.page.getByTestId('pairing-dialog')).toContainText('used one of your invite links');
  await alice.screenshot('3-pairing-request');
  await alice.answerPairing('Approve');
  await expect(bob.page.getByTestId('pairing-state')).toHaveText(/Paired with/);
  await expect(alice.peerItem(bob.peerId)).toBeVisible();
  await expect(bob.peerItem(alice.peerId)).toBeVisible();
  await expect(alice.peerItem(bob.peerId).getByTestId('peer-state')).toHaveText('online');

  await bob.connect(alice.peerId);
  await bob.expectConnected(alice.peerId);
  await alice.expectConnected(bob.peerId);

  await bob.chat(alice.peerId, 'hello alice, this is bob');
  await alice.chat(bob.peerId, 'hi bob ✓ über-encrypted');
  await expect(alice.session(bob.peerId).getByTestId('chat-log')).toContainText('hello alice, this is bob');
  await expect(bob.session(alice.peerId).getByTestId('chat-log')).toContainText('hi bob ✓ über-encrypted');

  const file = randomBytes(3 * 1024 * 1024 + 17);
  const sha256 = createHash('sha256').update(file).digest('hex');
  await alice.session(bob.peerId).getByLabel('File to send').setInputFiles({
    name: 'weights.bin',
    mimeType: 'application/octet-stream',
    buffer: file,
  });
  await alice.session(bob.peerId).getByTestId('file-send').click();
  const received = bob.session(alice.peerId).getByTestId('transfer').first();
  await expect(received).toHaveAttribute('data-sha256', sha256);
  await expect(received.getByTestId('transfer-note')).toContainText('SHA-256 verified');
  await expect(alice.session(bob.peerId).getByTestId('transfer-note').first()).toContainText(
    'verified by the peer',
  );
  const download = bob.page.waitForEvent('download');
  await received.getByTestId('download').click();
  const saved = await download;
  const path = await saved.path();
  const { readFileSync } = await import('node:fs');
  expect(createHash('sha256').update(readFileSync(path)).digest('hex')).toBe(sha256);

  await alice.session(bob.peerId).getByTestId('camera-toggle').click();
  await expect(alice.session(bob.peerId).getByTestId('camera-toggle')).toHaveText('Stop camera');
  await expect(bob.session(alice.peerId).getByTestId('video-note')).toHaveText("Live: the peer's camera");
  const frames = bob.session(alice.peerId).getByTestId('stat-frames');
  await expect.poll(async () => Number(await frames.textContent()), { timeout: 30_000 }).toBeGreaterThan(30);
  await expect(bob.session(alice.peerId).getByTestId('stat-candidate')).toHaveText(/host/);
  await expect(bob.session(alice.peerId).getByTestId('stat-rtt')).toHaveText(/ms$/);
  await expect(bob.session(alice.peerId).getByTestId('stat-fps')).not.toHaveText('0.0');

  // A file sent while the camera runs is paced (so the video keeps its frames) and still arrives intact.
  const second = randomBytes(2 * 1024 * 1024);
  await alice.session(bob.peerId).getByLabel('File to send').setInputFiles({
    name: 'checkpoint.bin',
    mimeType: 'application/octet-stream',
    buffer: second,
  });
  await alice.session(bob.peerId).getByTestId('file-send').click();
  await expect(bob.session(alice.peerId).getByTestId('transfer').first()).toHaveAttribute(
    'data-sha256',
    createHash('sha256').update(second).digest('hex'),
  );
  await expect(alice.session(bob.peerId).getByTestId('transfer').first()).toHaveAttribute(
    'data-paced',
    'true',
  );
  await expect(alice.session(bob.peerId).getByTestId('transfer').nth(1)).not.toHaveAttribute(
    'data-paced',
    'true',
  );
  await bob.screenshot('4-connected-video');
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.screenshot('5-phone');
});
