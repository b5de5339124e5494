/**
 * `npm run demo:node` runs to success: the same script, spawned as the npm script runs it (tsx), with a
 * smaller file to keep the suite quick. Checks that each step it narrates happened.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/processes.js';

describe('npm run demo:node', () => {
  it('pairs two Node peers, exchanges messages and datagrams, sends a verified file, exits 0', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'scripts', 'demo-node.ts'), '--file-mib', '4'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    assert.equal(r.status, 0, `demo exited ${r.status}\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    assert.match(out, /signaling server listening on http:\/\/127\.0\.0\.1:\d+/);
    assert.match(out, /alice generated identity [a-z2-7]{52}/);
    assert.match(out, /alice redeemed it/);
    assert.match(out, /alice received "bob got: messages keep their order"/);
    assert.match(out, /SLLP mode: 500 datagrams .* [1-9]\d* echoed/);
    assert.match(out, /alice sent 4 MiB .*MB\/s.*: intact/);
    assert.match(out, /bob saw "demo finished" \(by peer: true\)/);
  });
});
