// What must survive a reload (identity, pairs, the connection) and what must not be stored at all (a
// pairing the user rejected), between two browsers.
import { expect, short, test } from './demo-fixtures.js';

test('reload: identity and pairs survive in IndexedDB and the connection comes back', async ({ newPeer }) => {
  const alice = await newPeer('alice');
  const bob = await newPeer('bob');
  await bob.openInvite(await alice.createInvite());
  await alice.answerPairing('Approve');
  await expect(alice.peerItem(bob.peerId)).toBeVisible();
  await bob.connect(alice.peerId);
  await bob.expectConnected(alice.peerId);
  await alice.expectConnected(bob.peerId);

  // The dialing side reloads: same identity, same pair, and it dials again by itself.
  const bobId = bob.peerId;
  await bob.reload();
  await expect(bob.page.getByTestId('my-peer-id')).toHaveText(bobId);
  await expect(bob.peerItem(alice.peerId)).toBeVisible();
  await bob.expectConnected(alice.peerId);
  await alice.expectConnected(bob.peerId);
  await bob.chat(alice.peerId, 'back after a reload');
  await expect(alice.session(bob.peerId).getByTestId('chat-log')).toContainText('back after a reload');

  // The accepting side reloads: the dialer's reconnecting connection finds it again.
  const aliceId = alice.peerId;
  await alice.reload();
  await expect(alice.page.getByTestId('my-peer-id')).toHaveText(aliceId);
  await expect(alice.peerItem(bob.peerId)).toBeVisible();
  await alice.expectConnected(bob.peerId);
  await bob.expectConnected(alice.peerId);
  await alice.chat(bob.peerId, 'and back again');
  await expect(bob.session(alice.peerId).getByTestId('chat-log')).toContainText('and back again');
});

test('a pairing request the user rejects leaves nothing stored on either side', async ({ newPeer }) => {
  const alice = await newPeer('alice');
  const bob = await newPeer('bob');
  await bob.openInvite(await alice.createInvite());
  await alice.answerPairing('Reject');
  await expect(bob.page.getByTestId('pairing-state')).toHaveText(
    /Pairing failed: the other side rejected the pairing request \(pairing_rejected\)/,
  );
  // Both sides log the rejection in their Events list.
  await bob.expectEvent(
    new RegExp(`Pairing with ${short(alice.peerId)} failed: the other side rejected the pairing request`),
  );
  await alice.expectEvent(new RegExp(`Rejected the pairing request from ${short(bob.peerId)}$`));
  await expect(alice.page.getByTestId('invite-status')).toHaveText(/\(you rejected it\)/);
  await bob.screenshot('10-pairing-rejected');
  for (const peer of [alice, bob]) {
    await expect(peer.page.locator('[data-testid="peer-item"]')).toHaveCount(0);
    await peer.reload();
    await expect(peer.page.locator('[data-testid="peer-item"]')).toHaveCount(0);
  }
});
