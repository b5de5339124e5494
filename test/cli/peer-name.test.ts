/**
 * Naming a paired peer on the command line (issue 16, point 4): full peerId, unique prefix (the short
 * form the CLI prints, with its ellipsis), or label; an ambiguous name lists the candidates with its own
 * error code and exit code. The end-to-end path (a prefix and a label given to `send`) is in
 * listener.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExitCodes, exitCodeFor } from '../../src/cli/exit-codes.js';
import { describeMatch, matchPeer } from '../../src/cli/peer-name.js';

const A1 = `abcde${'a'.repeat(47)}`;
const A2 = `abcdf${'b'.repeat(47)}`;
const Z = `zzzz${'c'.repeat(48)}`;
const peers = [
  { peerId: A1, label: 'worker' },
  { peerId: A2, label: 'Worker' },
  { peerId: Z, label: 'gpu box' },
  { peerId: `q${'d'.repeat(51)}` },
];

describe('CLI peer names', () => {
  it('a full peerId is taken as it is, paired or not', () => {
    assert.deepEqual(matchPeer(A1, peers), { peerId: A1, by: 'id' });
    const stranger = 'x'.repeat(52);
    assert.deepEqual(matchPeer(stranger, []), { peerId: stranger, by: 'id' });
    assert.equal(describeMatch(matchPeer(A1, peers)), undefined);
  });

  it('a unique prefix, with or without the printed ellipsis, and says what it matched', () => {
    assert.deepEqual(matchPeer('abcde', peers), { peerId: A1, by: 'prefix', prefix: 'abcde' });
    assert.equal(matchPeer('zzzzcccc…', peers).peerId, Z);
    assert.equal(matchPeer('ZZZZ...', peers).peerId, Z);
    assert.equal(describeMatch(matchPeer('zzzz', peers)), `"zzzz" matches ${Z}`);
  });

  it('a label: exact first, then ignoring case', () => {
    assert.deepEqual(matchPeer('worker', peers), { peerId: A1, by: 'label', label: 'worker' });
    assert.equal(matchPeer('Worker', peers).peerId, A2);
    assert.equal(matchPeer('GPU BOX', peers).peerId, Z);
    assert.equal(describeMatch(matchPeer('gpu box', peers)), `peer "gpu box" is ${Z}`);
  });

  it('an ambiguous name lists the candidates: ambiguous_peer, exit code 11', () => {
    assert.throws(
      () => matchPeer('abcd', peers),
      (e: Error & { code?: string }) =>
        e.code === 'ambiguous_peer' && e.message.includes(A1) && e.message.includes(A2),
    );
    assert.throws(
      () => matchPeer('WORKER', peers),
      (e: Error & { code?: string }) => e.code === 'ambiguous_peer' && /worker.*Worker/.test(e.message),
    );
    assert.equal(exitCodeFor('ambiguous_peer'), ExitCodes.AMBIGUOUS_PEER);
    assert.equal(ExitCodes.AMBIGUOUS_PEER, 11);
  });

  it('nothing matches: unknown_peer; too short a prefix says how long one must be', () => {
    assert.throws(() => matchPeer('nobody', peers), { code: 'unknown_peer' });
    assert.throws(() => matchPeer('abc', peers), /at least 4 characters/);
    assert.throws(() => matchPeer('', peers), { code: 'invalid_argument' });
  });
});
