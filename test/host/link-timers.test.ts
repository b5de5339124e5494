// A closed link must leave no timer behind: a worker that finished its transfer and closed everything
// should exit at once, not seconds later (simple-peer arms an "ICE complete" timer it never clears).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { BACKENDS, loadRtc, until } from '../helpers/hosts.js';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

for (const backend of BACKENDS) {
  it(`${backend}: closing both ends of an open link leaves no pending timer`, async () => {
    const rtc = await loadRtc(backend);
    const before = timers();
    const a = new PeerLink({ rtc, initiator: true, candidateFilter: loopbackOnly });
    const b = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
    a.on('signal', (s) => b.signal(s));
    b.on('signal', (s) => a.signal(s));
    await Promise.all([new Promise((r) => a.once('open', r)), new Promise((r) => b.once('open', r))]);
    assert.ok(timers() > before, 'an open link has timers (the check below can fail)');
    a.close();
    b.close();
    await until(() => timers() <= before, 2_000, 'timers of the closed links cleared');
  });
}
