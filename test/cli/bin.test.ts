/**
 * `bin/p2ptls.js` never runs a build older than the sources (issue 16, point 23). The real launcher is
 * copied into a scratch tree with two stand-in CLIs, a compiled one (dist/src/cli/main.js) and a source
 * one (src/cli/main.ts, run through tsx), each printing which it is; file times decide which runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/processes.js';
import { tempDir } from './_cli.js';

const stub = (what: string) =>
  `export async function main(argv) { process.stdout.write('${what} ' + argv.slice(2).join(' ')); }\n`;

describe('bin/p2ptls.js picks source or build by file times', () => {
  let tree: string;
  const at = (path: string, seconds: number) => utimes(join(tree, path), seconds, seconds);
  const run = () => {
    const r = spawnSync(process.execPath, [join(tree, 'bin', 'p2ptls.js'), 'id'], {
      encoding: 'utf8',
      // Not forced to the source: the launcher decides.
      env: { ...process.env, P2PTLS_CLI_SOURCE: '' },
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  before(async () => {
    tree = await tempDir('p2ptls-bin-');
    await mkdir(join(tree, 'bin'));
    await writeFile(join(tree, 'package.json'), '{ "type": "module" }\n');
    await copyFile(join(ROOT, 'bin', 'p2ptls.js'), join(tree, 'bin', 'p2ptls.js'));
    // tsx for the source path, resolved from the scratch tree as from a checkout.
    await symlink(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    await mkdir(join(tree, 'src', 'cli'), { recursive: true });
    await mkdir(join(tree, 'signaling-server'));
    await mkdir(join(tree, 'dist', 'src', 'cli'), { recursive: true });
    await writeFile(join(tree, 'src', 'cli', 'main.ts'), stub('source'));
    await writeFile(join(tree, 'signaling-server', 'server.ts'), 'export {};\n');
    await writeFile(join(tree, 'dist', 'src', 'cli', 'main.js'), stub('dist'));
  });
  after(() => rm(tree, { recursive: true, force: true }));

  it('a build newer than every source runs', async () => {
    await at('src/cli/main.ts', 1_000_000);
    await at('signaling-server/server.ts', 1_000_000);
    await at('dist/src/cli/main.js', 2_000_000);
    assert.equal(run(), 'dist id');
  });

  it('a source edited after the build (in src/ or signaling-server/) runs the source instead', async () => {
    await at('src/cli/main.ts', 3_000_000);
    assert.equal(run(), 'source id');
    await at('src/cli/main.ts', 1_000_000);
    await at('signaling-server/server.ts', 3_000_000);
    assert.equal(run(), 'source id');
  });

  it('no build in a checkout: the source', async () => {
    await rm(join(tree, 'dist'), { recursive: true });
    assert.equal(run(), 'source id');
  });

  it('an installed package (no src/): the build, whatever its age', async () => {
    await mkdir(join(tree, 'dist', 'src', 'cli'), { recursive: true });
    await writeFile(join(tree, 'dist', 'src', 'cli', 'main.js'), stub('dist'));
    await at('dist/src/cli/main.js', 1);
    await rm(join(tree, 'src'), { recursive: true });
    assert.equal(run(), 'dist id');
  });
});
