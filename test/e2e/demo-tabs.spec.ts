// One browser, several tabs: a tab opening the invite of the peer already running in another tab is
// offered a profile of its own (the same identity twice would fight over one signaling connection).
import { expect, test } from './demo-fixtures.js';

test('an invite opened in another tab of the same browser pairs through a second profile', async ({
  newPeer,
}) => {
  const alice = await newPeer('alice');
  const link = await alice.createInvite();

  const tab = await alice.page.context().newPage();
  await tab.goto(link);
  await expect(tab.getByTestId('boot-stage')).toHaveText(
    'This browser already runs your peer in another tab.',
  );
  // Only the notice: no app behind it that looks live (a signaling badge, an invite button).
  await expect(tab.getByTestId('another-profile')).toBeVisible();
  await expect(tab.getByTestId('invite-create')).toBeHidden();
  await expect(tab.getByTestId('signaling-state')).toBeHidden();
  await expect(tab.locator('#app')).toBeHidden();
  await tab.getByTestId('another-profile').click();
  await expect(tab).toHaveURL(/profile=peer-/);
  const dialog = tab.getByTestId('invite-dialog');
  await expect(dialog).toContainText(alice.peerId, { timeout: 60_000 });
  await dialog.getByRole('button', { name: 'Send pairing request' }).click();
  await alice.answerPairing('Approve');
  await expect(tab.getByTestId('pairing-state')).toHaveText(/Paired with/);
  const second = (await tab.getByTestId('my-peer-id').textContent()) ?? '';
  expect(second).not.toBe(alice.peerId);
  await expect(alice.peerItem(second)).toBeVisible();
  // The first tab kept its signaling connection: nobody took its peerId over.
  await expect(alice.page.getByTestId('signaling-state')).toHaveText('signaling: connected');

  // A peer opening its own invite (same profile) is told so instead of pairing with itself.
  const profile = new URL(tab.url()).searchParams.get('profile') ?? '';
  await tab.getByTestId('invite-create').click();
  const own = new URL((await tab.getByTestId('invite-link').getAttribute('href')) ?? '');
  own.searchParams.set('profile', profile);
  await tab.goto(own.href);
  await expect(tab.getByTestId('events')).toContainText('This is your own invite');
  await expect(tab.getByTestId('invite-dialog')).toHaveCount(0);
});
