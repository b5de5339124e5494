/**
 * Opening a LevelDB store the way the README's snippet used to, with `process.env.P2PTLS_PASSPHRASE!`
 * while the variable is unset (issue 16, point 10): a typed `invalid_argument` P2PTLSError that names
 * the setting, never a raw TypeError, and nothing half-created that breaks the next, correct open.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isP2PTLSError } from '../../src/errors.js';
import { openLevelPeerStore } from '../../src/node.js';

describe('openLevelPeerStore without a passphrase', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-nopass-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const [what, value] of [
    ['an unset variable (undefined)', undefined],
    ['an empty variable', ''],
    ['null', null],
  ] as const) {
    it(`${what}: invalid_argument naming P2PTLS_PASSPHRASE`, async () => {
      const opening = openLevelPeerStore({
        path: join(dir, 'store'),
        encryption: value as unknown as string,
      });
      await assert.rejects(opening, (err: unknown) => {
        assert.ok(isP2PTLSError(err, 'invalid_argument'), `not a typed error: ${String(err)}`);
        assert.match(err.message, /P2PTLS_PASSPHRASE/);
        assert.match(err.message, /unencrypted/);
        return true;
      });
    });
  }

  it('a wrong type is refused the same way; the path then opens with a passphrase', async () => {
    await assert.rejects(
      openLevelPeerStore({ path: join(dir, 'store'), encryption: 42 as unknown as string }),
      (err: unknown) => isP2PTLSError(err, 'invalid_argument'),
    );
    const store = await openLevelPeerStore({ path: join(dir, 'store'), encryption: 'now set' });
    const identity = await store.loadOrCreateIdentity();
    assert.match(identity.peerId, /^[a-z2-7]{52}$/);
    await store.close();
  });
});
