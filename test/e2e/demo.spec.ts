// The web demo between two browsers (two contexts = two IndexedDBs = two peers), driven through its UI.
import { createHash, randomBytes } from 'node:crypto';
import { type DemoPeer, expect, short, test } from './demo-fixtures.js';

/** The page's scroll position and where its header is. */
const scrollState = (peer: DemoPeer) =>
  peer.page.evaluate(() => ({
    y: scrollY,
    headerTop: document.querySelector('header.top')?.getBoundingClientRect().top,
  }));

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
  await expect(alice.page.getByTestId('invite-status')).toHaveText(/^Not used yet/);
  await alice.screenshot('2-invite');

  await bob.openInvite(link);
  await expect(alice.page.getByTestId('pairing-dialog')).toContainText(bob.peerId);
  await expect(alice.page.getByTestId('pairing-dialog')).toContainText('used one of your invite links');
  await alice.screenshot('3-pairing-request');
  await alice.answerPairing('Approve');
  await expect(bob.page.getByTestId('pairing-state')).toHaveText(`Paired with ${short(alice.peerId)}`);
  // The used invite keeps its link and QR code, and says who used it.
  await expect(alice.page.getByTestId('invite-status')).toHaveText(
    new RegExp(`^Used by ${short(bob.peerId)} \\(you approved it\\)`),
  );
  await expect(alice.page.getByTestId('invite-link')).toHaveAttribute('href', link);
  await expect(alice.page.getByTestId('invite-qr')).toBeVisible();
  // Both sides log the pairing alike.
  await alice.expectEvent(new RegExp(`Paired with ${short(bob.peerId)}$`));
  await bob.expectEvent(new RegExp(`Paired with ${short(alice.peerId)}$`));
  await expect(alice.peerItem(bob.peerId)).toBeVisible();
  await expect(bob.peerItem(alice.peerId)).toBeVisible();
  await expect(alice.peerItem(bob.peerId).getByTestId('peer-state')).toHaveText('online');

  // The peer list sits above the invite card and its QR code: opening a peer (default 1280×720 window)
  // needs no scrolling, and the header stays in place.
  const open = alice.peerItem(bob.peerId).getByRole('button', { name: `Open ${bob.peerId}` });
  await expect(open).toBeInViewport({ ratio: 1 });
  await open.click();
  expect(await scrollState(alice)).toEqual({ y: 0, headerTop: 0 });
  await expect(alice.session(bob.peerId)).toBeVisible();

  await bob.connect(alice.peerId);
  await bob.expectConnected(alice.peerId);
  await alice.expectConnected(bob.peerId);
  // The dialer and the accepting side both log the connection.
  await bob.expectEvent(new RegExp(`Connected to ${short(alice.peerId)}$`));
  await alice.expectEvent(new RegExp(`Connected to ${short(bob.peerId)}$`));

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
  // The camera runs until then; the timeout only bounds the wait (a loaded 2-core machine showed 25
  // frames in 30 s: the page decodes fewer frames than the camera sends).
  await expect.poll(async () => Number(await frames.textContent()), { timeout: 90_000 }).toBeGreaterThan(30);
  await expect(bob.session(alice.peerId).getByTestId('stat-candidate')).toHaveText(/host/);
  await expect(bob.session(alice.peerId).getByTestId('stat-rtt')).toHaveText(/ms$/);
  await expect(bob.session(alice.peerId).getByTestId('stat-fps')).not.toHaveText('0.0');

  // A file sent while the camera runs goes unpaced (bench:browser: the video keeps its fps beside a
  // full-speed transfer), arrives intact, and the video still runs after it.
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
  const framesAfterFile = Number(await frames.textContent());
  await expect
    .poll(async () => Number(await frames.textContent()), { timeout: 90_000 })
    .toBeGreaterThan(framesAfterFile);
  // At a desktop width the stats tiles stay in view while the peer's video is watched.
  await bob.page.setViewportSize({ width: 1280, height: 800 });
  const remote = bob.session(alice.peerId).getByTestId('remote-video');
  await remote.evaluate((el) => el.scrollIntoView({ block: 'end' }));
  await expect(bob.session(alice.peerId).getByTestId('stats')).toBeInViewport({ ratio: 1 });
  await expect(remote).toBeInViewport({ ratio: 0.5 });
  await bob.page.evaluate(() => scrollTo(0, 0));
  await bob.screenshot('4-connected-video');

  // The camera stops: the peer's last frame does not stay on screen.
  await expect(remote).not.toHaveAttribute('data-frame', 'none');
  await alice.session(bob.peerId).getByTestId('camera-toggle').click();
  await expect(bob.session(alice.peerId).getByTestId('video-note')).toHaveText("The peer's camera is off");
  await expect(remote).toHaveAttribute('data-frame', 'none');
  const drawn = await remote.evaluate((c: HTMLCanvasElement) => {
    const data = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? [];
    return data.some((v) => v !== 0);
  });
  expect(drawn, 'pixels left on the remote video canvas').toBe(false);
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.screenshot('5-phone');
});
