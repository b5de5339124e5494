// `npm test`: format + lint, type check, every test file under test/ with Node's test runner, then the
// web-demo end-to-end specs (test/e2e/*.spec.ts) with Playwright Test. Each step must pass; the first
// failure stops the run with a non-zero exit code.
//
//   node scripts/test.mjs <files…>   only those files (`.test.ts` with Node's runner, `.spec.ts` with
//                                    Playwright), without lint and type check
//   node scripts/test.mjs --unit     the unit tests (UNIT below): no browser, no process, no network
//
// Debian packages are installed only for the files that run (needs() below). Every test file must exit by
// itself once its tests are done: scripts/open-handles.mjs fails a file whose process is still held open
// and names what holds it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureApt } from './ensure-deps.mjs';
import { loopbackNamespace } from './netns.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

/**
 * Pure tests: bytes in, bytes out, in-memory links and stores. `npm run test:unit` runs them in under
 * a minute; they start no browser, no process and open no socket.
 */
const UNIT = [
  'test/unit/',
  'test/pairing/pairing.test.ts',
  'test/pairing/structure.test.ts',
  'test/store/memory.test.ts',
  'test/store/fuzz.test.ts',
  'test/host/dial-attempt.test.ts',
  'test/host/lifecycle.test.ts',
  'test/mesh/wire-examples.test.ts',
  'test/web-demo/app-protocol.test.ts',
  'test/web-demo/video.test.ts',
];

/** What a test starts that a Debian package provides, recognised in its source. */
const PACKAGES = [
  {
    pkg: 'chromium',
    binary: 'chromium',
    // The browser harness, Playwright, or the Chromium ↔ Node file run in its own namespace.
    uses: /\b(startBrowserHarness|launchChromium|chromiumPath)\b|@playwright\/test|\.netns\.ts/,
  },
  { pkg: 'redis-server', binary: 'redis-server', uses: /\bstartRedis\b/ },
  { pkg: 'coturn', binary: 'turnserver', uses: /\bturnserver\b/ },
];

function run(title, cmd, args) {
  console.log(`\n=== ${title}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\n${title} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

function findTests(dir, suffix) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(p, suffix));
    else if (entry.name.endsWith(suffix)) out.push(relative(root, p));
  }
  return out.sort();
}

/**
 * The source a test file runs: the file and the modules it imports from its own suite (followed
 * recursively). The shared helpers in test/helpers/ are left out: they can start everything, and what
 * counts is what the file asks them for.
 */
function sourceOf(file, seen = new Set()) {
  if (seen.has(file)) return '';
  seen.add(file);
  const text = readFileSync(join(root, file), 'utf8');
  let all = text;
  for (const m of text.matchAll(/from\s+['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative(root, resolve(root, dirname(file), m[1].replace(/\.js$/, '.ts')));
    if (target.startsWith('test/') && !target.startsWith('test/helpers/') && existsSync(join(root, target)))
      all += sourceOf(target, seen);
  }
  return all;
}

/** The Debian packages `file` needs. */
function needs(file) {
  const source = sourceOf(file);
  return PACKAGES.filter((p) => p.uses.test(source));
}

const args = process.argv.slice(2);
const unit = args.includes('--unit');
for (const a of args.filter((x) => x.startsWith('--') && x !== '--unit')) {
  console.error(`[test] unknown option ${a} (known: --unit, or test files)`);
  process.exit(2);
}
const only = args.filter((a) => !a.startsWith('--'));
const full = !unit && only.length === 0;
const expand = (p) =>
  existsSync(join(root, p)) && statSync(join(root, p)).isDirectory()
    ? findTests(join(root, p), '.test.ts')
    : [p];

let files;
let specs;
if (unit) {
  files = UNIT.flatMap(expand);
  specs = [];
} else if (full) {
  files = findTests(join(root, 'test'), '.test.ts');
  specs = findTests(join(root, 'test', 'e2e'), '.spec.ts');
} else {
  files = only.filter((f) => !f.endsWith('.spec.ts')).flatMap(expand);
  specs = only.filter((f) => f.endsWith('.spec.ts'));
}

if (full) {
  run('lint + format (biome)', bin('biome'), ['check', '.']);
  run('type check (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
}

// Only what the selected files start is installed, now, while the network is reachable: the tests
// themselves run without it (below). Playwright specs always drive Chromium.
/** Debian package → the selected files that need it. */
const wanted = new Map();
for (const f of [...files, ...specs]) {
  for (const p of f.endsWith('.spec.ts') ? [PACKAGES[0]] : needs(f)) {
    wanted.set(p.pkg, { ...p, files: [...(wanted.get(p.pkg)?.files ?? []), f] });
  }
}
for (const p of wanted.values()) {
  try {
    ensureApt(p.binary, p.pkg);
  } catch (err) {
    console.error(
      `[test] ${p.binary} is missing and \`apt-get install ${p.pkg}\` failed (${err instanceof Error ? err.message : err}).\n` +
        `[test] Install it (as root), or leave out the files that need it:\n${p.files.map((f) => `[test]   ${f}`).join('\n')}`,
    );
    process.exit(1);
  }
}

// Tests only ever touch loopback: they run in a namespace whose only interface is `lo` (scripts/netns.mjs).
// Chromium is the reason it is required: it gathers every interface it sees and pairs its own non-loopback
// sockets with the peer's loopback candidates, so outside a namespace a browser test cannot keep to
// loopback. The Node WebRTC stacks are bound to loopback by the tests themselves.
const networked = !unit && files.length + specs.length > 0;
if (networked) {
  try {
    ensureApt('ip', 'iproute2');
    ensureApt('unshare', 'util-linux');
  } catch (err) {
    console.warn(`[test] ${err instanceof Error ? err.message : err}`);
  }
}
const isolated = networked ? loopbackNamespace() : null;
let notRun = [];
if (networked && !isolated) {
  const browserFiles = [...files.filter((f) => needs(f).some((p) => p.pkg === 'chromium')), ...specs];
  const why =
    'cannot create a network namespace: `unshare -n` needs root, `unshare -rn` needs unprivileged user ' +
    'namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu ' +
    'kernel.apparmor_restrict_unprivileged_userns=0), and both need util-linux and iproute2';
  if (process.env.CI) {
    console.error(`[test] ${why}.\nCI must run every test; these need the namespace:`);
    for (const f of browserFiles) console.error(`  ${f}`);
    process.exit(1);
  }
  if (browserFiles.length > 0) {
    console.warn(
      `[test] ${why}.\n[test] NOT RUN (they drive Chromium, which needs a loopback-only namespace):`,
    );
    for (const f of browserFiles) console.warn(`[test]   ${f}`);
    files = files.filter((f) => !browserFiles.includes(f));
    specs = [];
    notRun = browserFiles;
  }
  console.warn('[test] the other files run without loopback isolation');
}

/**
 * Test files run at once: one by default. Two at a time saved ~10 % of the node tests' time on the 2-core
 * reference machine (303 s against ~340 s) but, in three full runs, a 4-member elastic kill test (its
 * ring re-dials mid-operation) and a 10-dial test failed beside another heavy file and passed alone.
 * P2PTLS_TEST_CONCURRENCY=2 (or more) runs several files at once.
 */
const concurrency = Number(process.env.P2PTLS_TEST_CONCURRENCY) || 1;

/** Runs a command in the loopback-only namespace when there is one. */
function runIsolated(title, cmd, cmdArgs) {
  if (isolated) run(`${title}, loopback only`, isolated[0], [...isolated[1], cmd, ...cmdArgs]);
  else run(title, cmd, cmdArgs);
}

if (files.length > 0) {
  runIsolated(`tests (${files.length} files)`, process.execPath, [
    '--import',
    'tsx',
    '--import',
    './scripts/open-handles.mjs',
    '--test',
    '--test-reporter=spec',
    '--test-timeout=600000',
    `--test-concurrency=${concurrency}`,
    ...files,
  ]);
}
if (specs.length > 0) {
  runIsolated('browser end-to-end (Playwright, web demo)', process.execPath, [
    join(root, 'node_modules', '@playwright', 'test', 'cli.js'),
    'test',
    ...specs,
  ]);
}
if (notRun.length > 0) {
  console.warn(`\n[test] ${notRun.length} file(s) NOT RUN for want of a network namespace (see the top):`);
  for (const f of notRun) console.warn(`[test]   ${f}`);
}
