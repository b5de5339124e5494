// Runs inside Chromium (bundled by test/helpers/browser.ts). Exposes a small API on globalThis.storeTest
// that the Node side drives with page.evaluate; errors come back as their p2ptls code, not as exceptions.
import { openDB } from 'idb';
import { isP2PTLSError } from '../../src/errors.js';
import type { StoreEncryption } from '../../src/store/crypto.js';
import { exportBackup, type PeerStore } from '../../src/store/index.js';
import { openIndexedDbPeerStore } from '../../src/store/indexeddb.js';
import { toBase64Url, utf8 } from '../../src/util/bytes.js';
import { fakePublicIdentity, randomPsk } from './fixtures.js';

const stores = new Map<string, PeerStore>();
const storeOf = (name: string) => {
  const s = stores.get(name);
  if (!s) throw new Error(`store ${name} is not open`);
  return s;
};

/** Either a value or the code of the P2PTLSError that was thrown. */
export type Result<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

async function result<T>(fn: () => Promise<T>): Promise<Result<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (isP2PTLSError(err)) return { ok: false, code: err.code, message: err.message };
    throw err;
  }
}

const elapsed = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

const api = {
  open: (name: string, encryption: StoreEncryption) =>
    result(async () => {
      const s = await openIndexedDbPeerStore({ name, encryption });
      stores.set(name, s);
      return { persisted: s.persisted ?? null, encrypted: s.encrypted };
    }),
  close: async (name: string) => {
    await storeOf(name).close();
    stores.delete(name);
  },
  /** Adds `n` fake peers; returns their peerIds and base64url PSKs. */
  putFake: async (name: string, n: number) => {
    const out: { peerId: string; psk: string }[] = [];
    for (let i = 0; i < n; i++) {
      const psk = randomPsk();
      const r = await storeOf(name).put({
        publicIdentity: await fakePublicIdentity(),
        psk,
        label: `peer ${i}`,
      });
      out.push({ peerId: r.peerId, psk: toBase64Url(psk) });
    }
    return out;
  },
  get: (name: string, peerId: string) =>
    result(async () => {
      const r = await storeOf(name).get(peerId);
      return r ? { label: r.label ?? null, psk: toBase64Url(r.psk) } : null;
    }),
  list: async (name: string) => {
    const { peers, problems } = await storeOf(name).list();
    return {
      peers: peers.map((p) => ({ peerId: p.peerId, psk: toBase64Url(p.psk) })),
      problems: problems.map((p) => ({ key: p.key, code: p.error.code })),
    };
  },
  /** Loads or creates the identity; returns its peerId and whether a signature by it verifies. */
  identity: (name: string, extractable?: boolean) =>
    result(async () => {
      const id = await storeOf(name).loadOrCreateIdentity(extractable === undefined ? {} : { extractable });
      const msg = utf8('browser identity check');
      return {
        peerId: id.peerId,
        extractable: id.privateKeys.signingPrivateKey.extractable,
        signs: await id.publicIdentity.verify(await id.sign(msg), msg),
      };
    }),
  /** Writes bytes that are not a record straight into the object store, bypassing the PeerStore. */
  corrupt: async (name: string, peerId: string) => {
    const db = await openDB(name);
    await db.put('records', { v: 1, peerId, garbage: true }, `peer:${peerId}`);
    db.close();
  },
  exportBackup: (name: string, passphrase: string) =>
    result(async () => toBase64Url((await exportBackup(storeOf(name), passphrase)).bytes)),
  /** Times open/put/get/list of `n` fake peers in a fresh database; returns milliseconds per phase. */
  bench: async (name: string, encryption: StoreEncryption, n: number) => {
    const t = performance.now();
    const store = await openIndexedDbPeerStore({ name, encryption, persist: false });
    const open = performance.now() - t;
    const inputs = await Promise.all(
      Array.from({ length: n }, async () => ({
        publicIdentity: await fakePublicIdentity(),
        psk: randomPsk(),
      })),
    );
    const put = await elapsed(async () => {
      for (const input of inputs) await store.put(input);
    });
    const get = await elapsed(async () => {
      for (const input of inputs) await store.get(input.publicIdentity.peerId);
    });
    let count = 0;
    const list = await elapsed(async () => {
      count = (await store.list()).peers.length;
    });
    await store.close();
    return { open, put, get, list, count };
  },
};

export type StoreTestApi = typeof api;
(globalThis as { storeTest?: StoreTestApi }).storeTest = api;
(globalThis as { __ready?: boolean }).__ready = true;
