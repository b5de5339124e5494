#!/usr/bin/env node
// The `p2ptls` command. An installed package (no src/) runs its compiled dist/. A checkout runs the
// compiled CLI only while that build is newer than every source file it is built from; otherwise (no
// build, or a file edited or checked out since `npm run build`) it runs the TypeScript source through
// tsx, so a stale build never runs and `npx p2ptls` works in a fresh clone after `npm ci`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'src', 'cli', 'main.js');
const source = join(root, 'src', 'cli', 'main.ts');

/** Newest modification time (ms) of the .ts files under `dir`; 0 when there is none. */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Whether to run the source: forced, no build, or a build older than the sources (in a checkout). */
function runSource() {
  if (!existsSync(source)) return false;
  // P2PTLS_CLI_SOURCE=1 forces the source (tests use it).
  if (process.env.P2PTLS_CLI_SOURCE === '1') return true;
  if (!existsSync(built)) return true;
  // What tsconfig.build.json compiles: src/ and signaling-server/.
  const newest = Math.max(newestSource(join(root, 'src')), newestSource(join(root, 'signaling-server')));
  return newest > statSync(built).mtimeMs;
}

let entry = built;
if (runSource()) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = source;
} else if (!existsSync(built)) {
  process.stderr.write(`p2ptls: this installation has no compiled CLI (${built} is missing): reinstall it\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
await main(process.argv);
