import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { Identity } from '../../src/identity/index.js';
import { openLevelPeerStore } from '../../src/store/level.js';
import { fromUtf8, toBase64Url, toHex, utf8 } from '../../src/util/bytes.js';
import { fakePublicIdentity, randomPsk, withCode } from './fixtures.js';

const PASS = 'correct horse battery staple';

describe('PeerStore on LevelDB', () => {
  let dir: string;
  let n = 0;
  const freshPath = () => join(dir, `db${n++}`);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-store-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Opens the LevelDB directly (store closed) to read or damage raw values. */
  async function raw<T>(path: string, fn: (db: ClassicLevel<string, Uint8Array>) => Promise<T>): Promise<T> {
    const db = new ClassicLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  it('persists peers and the identity across close and reopen', async () => {
    const path = freshPath();
    const s1 = await openLevelPeerStore({ path, encryption: PASS });
    assert.equal(s1.kind, 'leveldb');
    const id = await s1.loadOrCreateIdentity();
    const pub = await fakePublicIdentity();
    const psk = randomPsk();
    await s1.put({ publicIdentity: pub, psk, label: 'bob', addedAt: 7, lastSeenAt: 8, updatedAt: 9 });
    await s1.close();

    const s2 = await openLevelPeerStore({ path, encryption: { mode: 'passphrase', passphrase: PASS } });
    const again = await s2.getIdentity();
    assert.equal(again?.peerId, id.peerId);
    assert.equal((await s2.loadOrCreateIdentity()).peerId, id.peerId);
    const msg = utf8('same keys');
    assert.ok(await id.publicIdentity.verify(await again!.sign(msg), msg));
    assert.deepEqual(await s2.get(pub.peerId), {
      peerId: pub.peerId,
      publicIdentity: pub,
      psk,
      label: 'bob',
      trust: 'paired',
      addedAt: 7,
      lastSeenAt: 8,
      updatedAt: 9,
    });
    await s2.close();
  });

  it('keeps secrets encrypted on disk and public fields readable', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    const id = await s.loadOrCreateIdentity();
    const secret = await id.exportSecret();
    const pub = await fakePublicIdentity();
    const psk = randomPsk();
    await s.put({ publicIdentity: pub, psk, label: 'visible-label' });
    await s.close();
    const stored = await raw(path, async (db) => JSON.parse(fromUtf8((await db.get(`peer:${pub.peerId}`))!)));
    assert.equal(stored.v, 1);
    assert.equal(stored.label, 'visible-label');
    assert.equal(stored.psk.alg, 'A256GCM');
    // Scan every file LevelDB wrote: neither the PSK nor the private key may appear in any encoding.
    let disk = '';
    for (const f of await readdir(path)) disk += (await readFile(join(path, f))).toString('latin1');
    assert.ok(disk.includes('visible-label'));
    assert.ok(!disk.includes(toBase64Url(psk)));
    assert.ok(!disk.includes(Buffer.from(psk).toString('latin1')));
    assert.ok(!disk.includes(secret.signingKey.slice(40, 120)));
    assert.ok(!disk.includes(toHex(psk)));
  });

  it('a wrong passphrase is a typed error and changes nothing', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    const pub = await fakePublicIdentity();
    await s.put({ publicIdentity: pub, psk: randomPsk() });
    await s.close();
    const before = await raw(path, (db) => db.iterator().all());
    await assert.rejects(openLevelPeerStore({ path, encryption: 'wrong' }), withCode('wrong_passphrase'));
    await assert.rejects(
      openLevelPeerStore({ path, encryption: { mode: 'unencrypted' } }),
      withCode('wrong_passphrase'),
    );
    const afterwards = await raw(path, (db) => db.iterator().all());
    assert.deepEqual(afterwards, before);
    // The failed opens released the lock and the right passphrase still works.
    const again = await openLevelPeerStore({ path, encryption: PASS });
    assert.ok(await again.has(pub.peerId));
    await again.close();
  });

  it('refuses fewer than 600,000 PBKDF2 iterations', async () => {
    await assert.rejects(
      openLevelPeerStore({
        path: freshPath(),
        encryption: { mode: 'passphrase', passphrase: PASS, iterations: 1000 },
      }),
      withCode('invalid_argument'),
    );
  });

  it('reports damaged, tampered and swapped records one by one; the rest stays usable', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    const pubs = await Promise.all(Array.from({ length: 6 }, () => fakePublicIdentity()));
    for (const p of pubs) await s.put({ publicIdentity: p, psk: randomPsk(), label: 'ok' });
    await s.close();
    const [garbage, flipped, relabeled, swapped, wrongSchema, good] = pubs as [
      (typeof pubs)[0],
      (typeof pubs)[0],
      (typeof pubs)[0],
      (typeof pubs)[0],
      (typeof pubs)[0],
      (typeof pubs)[0],
    ];
    await raw(path, async (db) => {
      const k = (p: { peerId: string }) => `peer:${p.peerId}`;
      await db.put(k(garbage), new Uint8Array([0xff, 0xfe, 0x00, 0x42, 0x13]));
      // Flip one bit inside the base64 ciphertext of the PSK.
      const f = JSON.parse(fromUtf8((await db.get(k(flipped)))!));
      const c = f.psk.data as string;
      f.psk.data = c.slice(0, 5) + (c[5] === 'A' ? 'B' : 'A') + c.slice(6);
      await db.put(k(flipped), utf8(JSON.stringify(f)));
      // Change a public field: bound into the AAD, so it must be caught too.
      const r = JSON.parse(fromUtf8((await db.get(k(relabeled)))!));
      r.label = 'evil';
      r.trust = 'paired';
      r.updatedAt += 1;
      await db.put(k(relabeled), utf8(JSON.stringify(r)));
      // Move good's valid record under another peer's key.
      await db.put(k(swapped), (await db.get(k(good)))!);
      await db.put(k(wrongSchema), utf8(JSON.stringify({ v: 1, peerId: 42 })));
    });

    const s2 = await openLevelPeerStore({ path, encryption: PASS });
    const { peers, problems } = await s2.list();
    assert.deepEqual(
      peers.map((p) => p.peerId),
      [good.peerId],
    );
    assert.deepEqual(
      problems.map((p) => p.key).sort(),
      [garbage, flipped, relabeled, swapped, wrongSchema].map((p) => p.peerId).sort(),
    );
    for (const p of problems) assert.equal(p.error.code, 'corrupt_record');
    for (const p of [garbage, flipped, relabeled, swapped, wrongSchema]) {
      await assert.rejects(s2.get(p.peerId), withCode('corrupt_record'));
      assert.equal(await s2.has(p.peerId), false);
      assert.equal(await s2.lookup(p.peerId).catch((e: { code?: string }) => e.code), 'corrupt_record');
    }
    assert.equal(await s2.has(good.peerId), true);
    assert.equal((await s2.get(good.peerId))?.label, 'ok');
    // A damaged record can be overwritten or deleted.
    await s2.put({ publicIdentity: flipped, psk: randomPsk(), label: 'repaired' });
    assert.equal((await s2.get(flipped.peerId))?.label, 'repaired');
    assert.equal(await s2.delete(garbage.peerId), true);
    assert.equal((await s2.list()).problems.length, 3);
    await s2.close();
  });

  it('refuses data written by a newer schema version instead of misreading it', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    const [a, b] = await Promise.all([fakePublicIdentity(), fakePublicIdentity()]);
    await s.put({ publicIdentity: a, psk: randomPsk() });
    await s.put({ publicIdentity: b, psk: randomPsk() });
    await s.close();
    await raw(path, async (db) => {
      const r = JSON.parse(fromUtf8((await db.get(`peer:${a.peerId}`))!));
      await db.put(`peer:${a.peerId}`, utf8(JSON.stringify({ ...r, v: 2 })));
    });
    const s2 = await openLevelPeerStore({ path, encryption: PASS });
    const { peers, problems } = await s2.list();
    assert.deepEqual(
      peers.map((p) => p.peerId),
      [b.peerId],
    );
    assert.deepEqual(
      problems.map((p) => [p.key, p.error.code]),
      [[a.peerId, 'unsupported_version']],
    );
    await s2.close();
    await raw(path, async (db) => {
      const m = JSON.parse(fromUtf8((await db.get('meta:crypto'))!));
      await db.put('meta:crypto', utf8(JSON.stringify({ ...m, v: 2 })));
    });
    await assert.rejects(openLevelPeerStore({ path, encryption: PASS }), withCode('unsupported_version'));
  });

  it('reports a damaged identity record with corrupt_record', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    await s.setIdentity(await Identity.generate());
    await s.close();
    await raw(path, async (db) => {
      const r = JSON.parse(fromUtf8((await db.get('identity'))!));
      r.secret.iv = toBase64Url(new Uint8Array(12));
      await db.put('identity', utf8(JSON.stringify(r)));
    });
    const s2 = await openLevelPeerStore({ path, encryption: PASS });
    await assert.rejects(s2.getIdentity(), withCode('corrupt_record'));
    const snap = await s2.snapshot();
    assert.equal(snap.identity, undefined);
    assert.deepEqual(
      snap.problems.map((p) => [p.key, p.error.code]),
      [['identity', 'corrupt_record']],
    );
    await s2.close();
  });

  it('a second process opening the same store gets store_locked', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    const module = resolve('src/store/level.ts');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { openLevelPeerStore } from ${JSON.stringify(module)};
         try { await openLevelPeerStore({ path: process.argv[1], encryption: 'x' }); console.log('OPENED'); }
         catch (e) { console.log('CODE=' + e.code); }`,
        path,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((res) => child.on('close', res));
    assert.equal(code, 0);
    assert.match(out, /CODE=store_locked/);
    // A second open inside this process is refused the same way.
    await assert.rejects(openLevelPeerStore({ path, encryption: PASS }), withCode('store_locked'));
    // After close, a new open succeeds.
    await s.close();
    const s2 = await openLevelPeerStore({ path, encryption: PASS });
    await s2.close();
  });

  it('stores and lists 10,000 peers', async () => {
    const path = freshPath();
    const s = await openLevelPeerStore({ path, encryption: PASS });
    const pubs = await Promise.all(Array.from({ length: 10_000 }, () => fakePublicIdentity()));
    await Promise.all(pubs.map((p) => s.put({ publicIdentity: p, psk: randomPsk() })));
    await s.close();
    const s2 = await openLevelPeerStore({ path, encryption: PASS });
    const { peers, problems } = await s2.list();
    assert.equal(peers.length, 10_000);
    assert.equal(problems.length, 0);
    assert.deepEqual(new Set(peers.map((p) => p.peerId)), new Set(pubs.map((p) => p.peerId)));
    await s2.close();
  });
});
