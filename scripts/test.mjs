// `npm test`: format + lint, type check, every test file under test/ with Node's test runner, then the
// web-demo end-to-end specs (test/e2e/*.spec.ts) with Playwright Test. Each step must pass; the first
// failure stops the run with a non-zero exit code. `node scripts/test.mjs <files>` runs only those files
// (`.test.ts` with Node's runner, `.spec.ts` with Playwright) and skips lint and type check.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureApt } from './ensure-deps.mjs';
import { loopbackNamespace } from './netns.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function run(title, cmd, args) {
  console.log(`\n=== ${title}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${title} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(p));
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out.sort();
}

const only = process.argv.slice(2);
if (only.length === 0) {
  run('lint + format (biome)', bin('biome'), ['check', '.']);
  run('type check (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
}
const files = only.length ? only.filter((f) => !f.endsWith('.spec.ts')) : findTests(join(root, 'test'));
const specs = only.filter((f) => f.endsWith('.spec.ts'));
const runSpecs = only.length === 0 || specs.length > 0;

// Debian packages that tests start as real processes. Installed now, while the network is reachable:
// the tests themselves run without it (below).
for (const [binary, pkg] of [
  ['chromium', 'chromium'],
  ['redis-server', 'redis-server'],
  ['turnserver', 'coturn'],
  ['ip', 'iproute2'],
  ['unshare', 'util-linux'],
]) {
  ensureApt(binary, pkg);
}

// Tests only ever touch loopback: they run in a namespace whose only interface is `lo` (scripts/netns.mjs).
function isolation() {
  const ns = loopbackNamespace();
  if (!ns)
    console.warn('[test] cannot create a network namespace (unshare): running without loopback isolation');
  return ns;
}
const isolated = isolation();
const testArgs = [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  '--test-timeout=600000',
  // A file whose tests all finished must not hold the run open through a stray handle (a reconnecting
  // client, a native WebRTC thread): CI has a time limit, and the tests have already reported.
  '--test-force-exit',
  ...files,
];
/** Runs a command in the loopback-only namespace when there is one. */
function runIsolated(title, cmd, args) {
  if (isolated) run(`${title}, loopback only`, isolated[0], [...isolated[1], cmd, ...args]);
  else run(title, cmd, args);
}

if (files.length > 0) runIsolated(`tests (${files.length} files)`, process.execPath, testArgs);
if (runSpecs) {
  runIsolated('browser end-to-end (Playwright, web demo)', process.execPath, [
    join(root, 'node_modules', '@playwright', 'test', 'cli.js'),
    'test',
    ...specs,
  ]);
}
