/**
 * npm run bench:store — put / get / list of 10,000 peer records, LevelDB (Node) and IndexedDB (Chromium),
 * each with at-rest encryption on and off in the same run.
 *
 * "ours"     = the store as shipped: AES-256-GCM sealing of each PSK, bound to its record by AAD
 *              (LevelDB: passphrase mode; IndexedDB: the browser default, device-key mode — same cipher).
 * "baseline" = the same store code in its explicit `{ mode: 'unencrypted' }` mode: the PSK is stored as
 *              base64, everything else (JSON, zod validation, peerId hash check, engine writes) is identical.
 * So the ratio is the honest cost of encryption inside a real store, not of AES alone.
 * Operations are sequential (each awaited), as a single writer would issue them. Each configuration runs
 * in several rounds with the order alternating (plain, encrypted, encrypted, plain, …) on fresh databases;
 * the median per phase is reported. Key derivation (PBKDF2, 600,000 iterations) happens at open and is
 * reported separately (LevelDB: reopen of an existing store; IndexedDB: creation, device key).
 * Flags: --quick (1,000 records), --no-browser.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoreEncryption } from '../src/store/crypto.js';
import type { PeerInput } from '../src/store/index.js';
import { openLevelPeerStore } from '../src/store/level.js';
import { fakePublicIdentity, randomPsk } from '../test/store/fixtures.js';

const N = process.argv.includes('--quick') ? 1_000 : 10_000;
const browser = !process.argv.includes('--no-browser');

interface Phases {
  open: number;
  put: number;
  get: number;
  list: number;
  count: number;
}

const LEVEL_ROUNDS = 3;
const IDB_ROUNDS = 2;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function medianPhases(runs: Phases[]): Phases {
  const pick = (k: keyof Phases) => median(runs.map((r) => r[k]));
  return {
    open: pick('open'),
    put: pick('put'),
    get: pick('get'),
    list: pick('list'),
    count: Math.min(...runs.map((r) => r.count)),
  };
}

/** Runs both configurations `rounds` times, alternating which goes first, and returns the medians. */
async function alternate(
  rounds: number,
  plain: (i: number) => Promise<Phases>,
  enc: (i: number) => Promise<Phases>,
) {
  const p: Phases[] = [];
  const e: Phases[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      p.push(await plain(i));
      e.push(await enc(i));
    } else {
      e.push(await enc(i));
      p.push(await plain(i));
    }
  }
  return { base: medianPhases(p), ours: medianPhases(e) };
}

const opsPerSec = (n: number, ms: number) => (n / ms) * 1000;
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function benchLevel(dir: string, name: string, encryption: StoreEncryption, inputs: PeerInput[]) {
  const path = join(dir, name);
  let store = await openLevelPeerStore({ path, encryption });
  await store.close();
  const r: Phases = { open: 0, put: 0, get: 0, list: 0, count: 0 };
  // Reopen timed: this is where PBKDF2 runs for an existing store.
  r.open = await time(async () => {
    store = await openLevelPeerStore({ path, encryption });
  });
  r.put = await time(async () => {
    for (const input of inputs) await store.put(input);
  });
  r.get = await time(async () => {
    for (const input of inputs) await store.get((input.publicIdentity as { peerId: string }).peerId);
  });
  r.list = await time(async () => {
    r.count = (await store.list()).peers.length;
  });
  await store.close();
  return r;
}

function report(engine: string, ours: Phases, base: Phases) {
  if (ours.count !== N || base.count !== N)
    throw new Error(`${engine}: listed ${ours.count}/${base.count}, expected ${N}`);
  for (const phase of ['put', 'get', 'list'] as const) {
    const o = opsPerSec(N, ours[phase]);
    const b = opsPerSec(N, base[phase]);
    console.log(
      `${engine.padEnd(9)} ${phase.padEnd(4)} records/s  encrypted=${fmt(o).padStart(7)}  unencrypted=${fmt(b).padStart(7)}  ratio=${(o / b).toFixed(3)}`,
    );
  }
  console.log(
    `${engine.padEnd(9)} open ms (see top)     encrypted=${fmt(ours.open).padStart(7)}  unencrypted=${fmt(base.open).padStart(7)}`,
  );
}

async function main() {
  console.log(`peer store benchmark: ${N} records, sequential operations, node ${process.version}`);
  const inputs: PeerInput[] = await Promise.all(
    Array.from({ length: N }, async () => ({ publicIdentity: await fakePublicIdentity(), psk: randomPsk() })),
  );
  const dir = await mkdtemp(join(tmpdir(), 'p2ptls-bench-store-'));
  try {
    // Warm-up (JIT, native binding), not reported.
    await benchLevel(dir, 'warm', { mode: 'unencrypted' }, inputs.slice(0, 500));
    const { base, ours } = await alternate(
      LEVEL_ROUNDS,
      (i) => benchLevel(dir, `plain${i}`, { mode: 'unencrypted' }, inputs),
      (i) => benchLevel(dir, `enc${i}`, { mode: 'passphrase', passphrase: 'bench passphrase' }, inputs),
    );
    report('leveldb', ours, base);

    if (browser) {
      const { startBrowserHarness } = await import('../test/helpers/browser.js');
      const harness = await startBrowserHarness({ entry: 'test/store/browser-entry.ts' });
      try {
        const page = await harness.newPage();
        const run = (name: string, encryption: StoreEncryption, n: number) =>
          page.evaluate(
            ({ name, encryption, n }) =>
              (
                globalThis as unknown as {
                  storeTest: { bench(a: string, e: StoreEncryption, n: number): Promise<Phases> };
                }
              ).storeTest.bench(name, encryption, n),
            { name, encryption, n },
          );
        await run('warm', { mode: 'unencrypted' }, 500);
        const idb = await alternate(
          IDB_ROUNDS,
          (i) => run(`plain${i}`, { mode: 'unencrypted' }, N),
          (i) => run(`enc${i}`, { mode: 'device-key' }, N),
        );
        report('indexeddb', idb.ours, idb.base);
      } finally {
        await harness.close();
      }
    }

    const o = opsPerSec(N, ours.put);
    const b = opsPerSec(N, base.put);
    console.log(
      `headline: leveldb-encrypted-put-ops/s ours=${fmt(o)} baseline=${fmt(b)} ratio=${(o / b).toFixed(3)}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
