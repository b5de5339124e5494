#!/usr/bin/env node
// The `p2ptls` command. Runs the compiled CLI (dist/, after `npm run build`) when it exists, else the
// TypeScript source through tsx, so that `npx p2ptls` works in a fresh clone after `npm ci`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'src', 'cli', 'main.js');

let entry = built;
// P2PTLS_CLI_SOURCE=1 runs the source even when a (possibly older) build exists: tests use it.
if (process.env.P2PTLS_CLI_SOURCE === '1' || !existsSync(built)) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = join(root, 'src', 'cli', 'main.ts');
}
const { main } = await import(pathToFileURL(entry).href);
await main(process.argv);
