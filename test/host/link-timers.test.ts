// A closed link must leave no timer behind: a worker that finished its transfer and closed everything
// should exit at once, not seconds later (simple-peer arms an "ICE complete" timer it never clears).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { BACKENDS, loadRtc, openLinkPair, until } from '../helpers/hosts.js';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

for (const backend of BACKENDS) {
  it(`${backend}: closing both ends of an open link leaves no pending timer`, async () => {
    const rtc = await loadRtc(backend);
    const before = timers();
    const [a, b] = await openLinkPair(rtc);
    assert.ok(timers() > before, 'an open link has timers (the check below can fail)');
    a.close();
    b.close();
    await until(() => timers() <= before, 2_000, 'timers of the closed links cleared');
  });
}
