/**
 * The package can be installed and used (issue 16, point 7): `npm pack` (whose `prepare` builds dist/),
 * the tarball unpacked into an empty project as `node_modules/p2ptls`, and a plain-JavaScript program
 * there that imports `p2ptls/node`: an embedded signaling server, two hosts, pairing, a connection, a
 * message, `shutdown()`. The installed `p2ptls` command runs too (from dist/: an installed package has
 * no src/).
 *
 * How the dependencies get there: the test runs offline, and npm's cache holds the lockfile's tarballs
 * but not the registry metadata a fresh `npm install` resolves ranges with (`npm install --offline
 * <tarball>` fails with ENOTCACHED). So the tarball is unpacked as npm would, and each dependency its
 * package.json declares is linked from this checkout's node_modules (Node resolves their own
 * dependencies from there, by real path). A dependency missing from package.json therefore fails here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/processes.js';

const PROGRAM = `
import { loopbackOnly, openMemoryPeerStore, SignalingClient, startNodeHost, startSignalingServer } from 'p2ptls/node';

console.log('resolved ' + import.meta.resolve('p2ptls/node'));
const server = await startSignalingServer({ port: 0, host: '127.0.0.1', logLevel: 'warn' });
const host = async () => {
  const store = await openMemoryPeerStore();
  const identity = await store.loadOrCreateIdentity();
  const signaling = new SignalingClient({ url: server.url, identity });
  return startNodeHost({ identity, peers: store, signaling, candidateFilter: loopbackOnly });
};
const [a, b] = [await host(), await host()];
await b.pair(a.createInvite());
const accepted = a.accept();
const conn = await b.connect(a.peerId);
const other = await accepted;
await conn.send('hello from an installed p2ptls');
console.log('got ' + new TextDecoder().decode((await other.messages().next()).value));
await conn.close(1000, 'done');
await b.shutdown();
await a.shutdown();
await server.close();
`;

function run(cmd: string, args: string[], cwd: string, timeoutMs: number) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs });
  assert.equal(
    r.status,
    0,
    `${cmd} ${args.join(' ')} exited ${r.status ?? r.signal} (bound ${timeoutMs} ms)\n${r.stdout}\n${r.stderr}`,
  );
  return r.stdout;
}

describe('the packed package, installed', () => {
  let dir: string;
  let app: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-pack-'));
    app = join(dir, 'app');
    // `prepare` runs `npm run build` first: the tarball holds a fresh dist/.
    run('npm', ['pack', '--pack-destination', dir], ROOT, 600_000);
    const tarball = (await readdir(dir)).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote no tarball');
    const pkg = join(app, 'node_modules', 'p2ptls');
    await mkdir(pkg, { recursive: true });
    await writeFile(join(app, 'package.json'), '{ "name": "app", "private": true, "type": "module" }\n');
    run('tar', ['xzf', join(dir, tarball), '-C', pkg, '--strip-components=1'], dir, 60_000);
    const manifest = JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const name of Object.keys(manifest.dependencies)) {
      const link = join(app, 'node_modules', name);
      await mkdir(dirname(link), { recursive: true });
      await symlink(join(ROOT, 'node_modules', name), link);
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('ships what its exports point at, and no sources', async () => {
    const pkg = join(app, 'node_modules', 'p2ptls');
    const files = new Set(await readdir(join(pkg, 'dist', 'src')));
    for (const f of ['node.js', 'node.d.ts', 'browser.js', 'browser.d.ts', 'index.js']) {
      assert.ok(files.has(f), `dist/src/${f} missing from the tarball`);
    }
    assert.deepEqual(
      (await readdir(pkg)).filter((f) => ['src', 'test', 'node_modules'].includes(f)),
      [],
    );
  });

  it("a program in an empty project imports 'p2ptls/node' and talks", async () => {
    await writeFile(join(app, 'main.mjs'), PROGRAM);
    const out = run(process.execPath, ['main.mjs'], app, 120_000);
    assert.match(out, /resolved file:\/\/.*\/app\/node_modules\/p2ptls\/dist\/src\/node\.js/);
    assert.match(out, /got hello from an installed p2ptls/);
  });

  it('the installed p2ptls command runs from dist', () => {
    const out = run(
      process.execPath,
      [join(app, 'node_modules', 'p2ptls', 'bin', 'p2ptls.js'), '--help'],
      app,
      60_000,
    );
    assert.match(out, /Usage: p2ptls/);
  });
});
