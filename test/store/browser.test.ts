import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBackup } from '../../src/store/index.js';
import { openLevelPeerStore } from '../../src/store/level.js';
import { fromBase64Url, toBase64Url } from '../../src/util/bytes.js';
import { type BrowserHarness, pageApi, startBrowserHarness } from '../helpers/browser.js';
import type { StoreTestApi } from './browser-entry.js';

/** Calls `globalThis.storeTest[method](...args)` inside the page. */
const call = pageApi<StoreTestApi>('storeTest');

const PASS = { mode: 'passphrase', passphrase: 'browser store passphrase' } as const;

describe('PeerStore on IndexedDB in Chromium', () => {
  let harness: BrowserHarness;
  let dir: string;
  before(async () => {
    harness = await startBrowserHarness({ entry: 'test/store/browser-entry.ts' });
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-browser-store-'));
  });
  after(async () => {
    await harness?.close();
    await rm(dir, { recursive: true, force: true });
  });

  let peers: { peerId: string; psk: string }[] = [];
  let identityPeerId = '';

  it('put / get / list, with the identity, then persists across a new page', async () => {
    const page = await harness.newPage();
    const opened = await call(page, 'open', 'db1', PASS);
    assert.ok(opened.ok, JSON.stringify(opened));
    assert.equal(opened.value.encrypted, true);
    assert.equal(typeof opened.value.persisted, 'boolean');
    peers = await call(page, 'putFake', 'db1', 5);
    const id = await call(page, 'identity', 'db1', true);
    assert.ok(id.ok && id.value.signs && id.value.extractable);
    identityPeerId = id.value.peerId;
    const got = await call(page, 'get', 'db1', peers[2]!.peerId);
    assert.deepEqual(got, { ok: true, value: { label: 'peer 2', psk: peers[2]!.psk } });
    assert.equal((await call(page, 'list', 'db1')).peers.length, 5);
    await call(page, 'close', 'db1');
    await page.close();

    const page2 = await harness.newPage();
    assert.ok((await call(page2, 'open', 'db1', PASS)).ok);
    const list = await call(page2, 'list', 'db1');
    assert.deepEqual(list.peers.map((p) => p.peerId).sort(), peers.map((p) => p.peerId).sort());
    assert.deepEqual(list.problems, []);
    const id2 = await call(page2, 'identity', 'db1');
    assert.ok(id2.ok);
    assert.equal(id2.value.peerId, identityPeerId);
    await call(page2, 'close', 'db1');
    await page2.close();
  });

  it('a wrong passphrase is wrong_passphrase', async () => {
    const page = await harness.newPage();
    const r = await call(page, 'open', 'db1', { mode: 'passphrase', passphrase: 'nope' });
    assert.deepEqual(r.ok ? 'opened' : r.code, 'wrong_passphrase');
    const r2 = await call(page, 'open', 'db1', { mode: 'device-key' });
    assert.deepEqual(r2.ok ? 'opened' : r2.code, 'wrong_passphrase');
    await page.close();
  });

  it('exports from IndexedDB and imports into LevelDB (Node)', async () => {
    const page = await harness.newPage();
    assert.ok((await call(page, 'open', 'db1', PASS)).ok);
    const exported = await call(page, 'exportBackup', 'db1', 'backup pass');
    await call(page, 'close', 'db1');
    await page.close();
    assert.ok(exported.ok);
    const store = await openLevelPeerStore({ path: join(dir, 'from-browser'), encryption: 'node pass' });
    const report = await importBackup(store, fromBase64Url(exported.value), 'backup pass');
    assert.deepEqual(report, {
      added: 5,
      updated: 0,
      kept: 0,
      identity: 'imported',
      pskChanges: [],
      stillBlocked: [],
    });
    assert.equal((await store.getIdentity())?.peerId, identityPeerId);
    const list = await store.list();
    assert.deepEqual(
      list.peers
        .map((p) => ({ peerId: p.peerId, psk: toBase64Url(p.psk) }))
        .sort((a, b) => (a.peerId < b.peerId ? -1 : 1)),
      [...peers].sort((a, b) => (a.peerId < b.peerId ? -1 : 1)),
    );
    await store.close();
  });

  it('a corrupt record is reported alone; the others stay readable', async () => {
    const page = await harness.newPage();
    await call(page, 'corrupt', 'db1', peers[0]!.peerId);
    assert.ok((await call(page, 'open', 'db1', PASS)).ok);
    const list = await call(page, 'list', 'db1');
    assert.equal(list.peers.length, 4);
    assert.deepEqual(list.problems, [{ key: peers[0]!.peerId, code: 'corrupt_record' }]);
    const bad = await call(page, 'get', 'db1', peers[0]!.peerId);
    assert.equal(bad.ok ? 'read' : bad.code, 'corrupt_record');
    const good = await call(page, 'get', 'db1', peers[1]!.peerId);
    assert.ok(good.ok && good.value?.psk === peers[1]!.psk);
    await call(page, 'close', 'db1');
    await page.close();
  });

  it('device-key mode keeps a non-extractable identity as CryptoKeys across pages', async () => {
    const page = await harness.newPage();
    const opened = await call(page, 'open', 'db2', { mode: 'device-key' });
    assert.ok(opened.ok);
    const [peer] = await call(page, 'putFake', 'db2', 1);
    const id = await call(page, 'identity', 'db2');
    assert.ok(id.ok && id.value.signs);
    assert.equal(id.value.extractable, false);
    await call(page, 'close', 'db2');
    await page.close();

    const page2 = await harness.newPage();
    assert.ok((await call(page2, 'open', 'db2', { mode: 'device-key' })).ok);
    const id2 = await call(page2, 'identity', 'db2');
    assert.ok(id2.ok && id2.value.signs);
    assert.equal(id2.value.peerId, id.value.peerId);
    assert.deepEqual(await call(page2, 'get', 'db2', peer!.peerId), {
      ok: true,
      value: { label: 'peer 0', psk: peer!.psk },
    });
    const wrongMode = await call(page2, 'open', 'db2', PASS);
    assert.equal(wrongMode.ok ? 'opened' : wrongMode.code, 'wrong_passphrase');
    await call(page2, 'close', 'db2');
    await page2.close();
  });
});
