// scripts/open-handles.mjs, which every test file runs under (scripts/test.mjs): a file whose process
// outlives its tests fails and names what holds it; a file that cleans up passes untouched.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT } from '../helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'p2ptls-open-handles-'));

/** Runs `source` as a test file under the check; resolves with its exit code and output. */
function runUnderCheck(name: string, source: string): Promise<{ code: number | null; output: string }> {
  const file = join(dir, name);
  writeFileSync(file, source);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    P2PTLS_OPEN_HANDLES_GRACE_MS: '500',
    P2PTLS_OPEN_HANDLES_TRACE: '1',
  };
  // Otherwise the inner runner would speak the parent runner's child protocol instead of printing.
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(
    process.execPath,
    ['--import', join(ROOT, 'scripts', 'open-handles.mjs'), '--test', '--test-reporter=spec', file],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => {
    output += b.toString('utf8');
  });
  child.stderr.on('data', (b: Buffer) => {
    output += b.toString('utf8');
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

describe('open-handles check', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fails a file that leaves a server and a timer behind, and names both', async () => {
    const { code, output } = await runUnderCheck(
      'leaky.test.mjs',
      `import { createServer } from 'node:net';
import { it } from 'node:test';
it('passes but leaks', async () => {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  setInterval(() => {}, 60_000);
});
`,
    );
    assert.notEqual(code, 0, output);
    assert.match(output, /still running\. It holds:/);
    assert.match(output, /Server on 127\.0\.0\.1:\d+/);
    assert.match(output, /timer \(60000 ms\) created .*leaky\.test\.mjs:6/);
  });

  it('fails a file that leaves a wrtc RTCPeerConnection open, and says so (no JavaScript handle shows it)', async () => {
    const { code, output } = await runUnderCheck(
      'peer-connection.test.mjs',
      `import { createRequire } from 'node:module';
import { it } from 'node:test';
const require = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});
it('passes but leaves its peer connection open', async () => {
  const { RTCPeerConnection } = require('@roamhq/wrtc');
  const pc = new RTCPeerConnection();
  pc.createDataChannel('leak');
  await pc.setLocalDescription(await pc.createOffer());
});
`,
    );
    assert.notEqual(code, 0, output);
    assert.match(output, /1 wrtc RTCPeerConnection\(s\) never closed/);
  });

  it('lets a file that closes what it opened pass', async () => {
    const { code, output } = await runUnderCheck(
      'clean.test.mjs',
      `import { createServer } from 'node:net';
import { it } from 'node:test';
it('closes its server', async () => {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  await new Promise((r) => srv.close(r));
});
`,
    );
    assert.equal(code, 0, output);
    assert.doesNotMatch(output, /open-handles/);
  });
});
