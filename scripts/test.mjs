// `npm test`: format + lint, type check, then every test file under test/ with Node's test runner.
// Each step must pass; the first failure stops the run with a non-zero exit code.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

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
const files = only.length ? only : findTests(join(root, 'test'));
run(`tests (${files.length} files)`, process.execPath, [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  '--test-timeout=600000',
  // A file whose tests all finished must not hold the run open through a stray handle (a reconnecting
  // client, a native WebRTC thread): CI has a time limit, and the tests have already reported.
  '--test-force-exit',
  ...files,
]);
