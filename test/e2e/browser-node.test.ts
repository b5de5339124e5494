// The browser build, and Chromium ↔ Node interop over loopback.
//
// The interop test (browser-node.netns.ts) runs in a fresh network namespace (`unshare -rn`, then
// `ip link set lo up`) whose only interface is `lo`. Outside one, Chromium pairs its non-loopback
// sockets (e.g. 192.0.2.2, fd00::2) with the peer's loopback candidates — p2ptls's `loopbackOnly` filters
// signalled candidates, not the local sockets ICE checks from — so the namespace is what guarantees that
// only 127.0.0.1 / ::1 are ever used. The inner file also refuses to run anywhere else.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { build } from 'esbuild';
import { browserBuild } from '../helpers/browser.js';
import { ROOT } from '../helpers/processes.js';

/** Runs `node --test file` in a new user + network namespace with only `lo` up; resolves with its exit and output. */
function runInLoopbackNamespace(
  file: string,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  const env = { ...process.env };
  // Otherwise the inner runner would speak the parent runner's child protocol instead of printing.
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(
    'unshare',
    [
      '--user',
      '--map-root-user',
      '--net',
      'sh',
      '-c',
      'ip link set lo up && exec "$0" --import tsx --import ./scripts/open-handles.mjs --test --test-reporter=spec --test-timeout=240000 "$1"',
      process.execPath,
      file,
    ],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => {
    output += b.toString('utf8');
  });
  child.stderr.on('data', (b: Buffer) => {
    output += b.toString('utf8');
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, output: `${output}\n${String(err)}` });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('browser build', () => {
  it('bundles src/browser.ts with simple-peer and no Node-only module', async () => {
    const { browserBuildOptions, nodeOnlyInputs } = await browserBuild();
    const out = await build({
      ...browserBuildOptions(),
      entryPoints: ['src/browser.ts'],
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    assert.deepEqual(nodeOnlyInputs(out.metafile), []);
    const inputs = Object.keys(out.metafile.inputs);
    assert.ok(inputs.some((p) => p.includes('node_modules/simple-peer/')));
    assert.ok(!inputs.some((p) => p.startsWith('src/runtime/') || p.includes('classic-level')));
  });

  it('Chromium ↔ Node: dial both ways, messages (≥ 1 MiB, SHA-256) and datagrams, loopback only', async (t) => {
    const { code, output } = await runInLoopbackNamespace('test/e2e/browser-node.netns.ts', 280_000);
    t.diagnostic(
      output
        .trim()
        .split('\n')
        .filter((l) => /[✔✖]/.test(l))
        .join('\n'),
    );
    assert.equal(code, 0, `the interop run in the loopback namespace failed:\n${output}`);
    // It must have run its tests, not just exited cleanly.
    assert.match(output, /ℹ pass [1-9]/);
    assert.match(output, /ℹ fail 0/);
  });
});
