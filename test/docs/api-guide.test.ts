/**
 * docs/API.md cannot rot: its ```ts blocks marked `run=NAME` are joined per name, in order, into one
 * program each, and run as separate processes (node --import tsx) against a real signaling server
 * process on loopback. Each program must exit 0 by itself, within a bound, with no test-runner help:
 * that is what `host.shutdown()` promises (issue 16, point 8). The only change made to the code is the
 * import specifier: `p2ptls/node` becomes this checkout's src/node.ts (test/package/ checks the
 * installed package itself). Every other ```ts block must say `norun`, so that a new block is a
 * decision, and the error table must list every code of ErrorCodes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ErrorCodes } from '../../src/errors.js';
import {
  type ManagedProcess,
  ROOT,
  type SignalingProcess,
  spawnProcess,
  startSignalingProcess,
} from '../helpers/processes.js';

const GUIDE = join(ROOT, 'docs', 'API.md');

/** The guide's ```ts blocks: their info string and code. */
async function tsBlocks(): Promise<{ info: string; code: string }[]> {
  const md = await readFile(GUIDE, 'utf8');
  return [...md.matchAll(/^```ts([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    info: m[1]!.trim(),
    code: m[2]!,
  }));
}

/** The programs of the guide, by name, with `p2ptls/node` pointing at this checkout's source. */
async function programs(): Promise<Map<string, string>> {
  const byName = new Map<string, string>();
  const entry = pathToFileURL(join(ROOT, 'src', 'node.ts')).href;
  for (const { info, code } of await tsBlocks()) {
    const name = /(?:^|\s)run=([\w-]+)/.exec(info)?.[1];
    if (!name) continue;
    const source = code.replaceAll("from 'p2ptls/node'", `from '${entry}'`);
    byName.set(name, `${byName.get(name) ?? ''}${source}\n`);
  }
  return byName;
}

/** Resolves with the exit code once `p` exits, or fails naming what it printed when `ms` runs out. */
async function exitWithin(p: ManagedProcess, ms: number, what: string): Promise<number | string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`${what} did not exit within ${ms} ms (a bound):\n${p.lines.slice(-20).join('\n')}`),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([p.exited, bound]);
  } finally {
    clearTimeout(timer);
  }
}

describe('docs/API.md', () => {
  let signal: SignalingProcess;
  let dir: string;
  let progs: Map<string, string>;
  const started: ManagedProcess[] = [];
  // tsx resolved from the checkout: the programs live in a scratch directory without node_modules.
  const tsx = import.meta.resolve('tsx');

  const run = async (name: string, args: string[] = []) => {
    const code = progs.get(name);
    assert.ok(code, `no program run=${name} in docs/API.md`);
    const file = join(dir, `${name}.mts`);
    await writeFile(file, code);
    const p = spawnProcess(process.execPath, ['--import', tsx, file, ...args], {
      cwd: dir,
      env: { P2PTLS_SIGNAL: signal.url, P2PTLS_PASSPHRASE: 'api guide passphrase' },
    });
    started.push(p);
    return p;
  };
  const output = (p: ManagedProcess) => p.lines.join('\n');

  before(async () => {
    signal = await startSignalingProcess();
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-api-guide-'));
    progs = await programs();
  });
  after(async () => {
    await Promise.all(started.map((p) => p.kill()));
    await signal?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('every ```ts block is either run by this test (run=NAME) or says norun', async () => {
    const blocks = await tsBlocks();
    assert.ok(blocks.length > 10);
    const unmarked = blocks.filter((b) => !/(?:^|\s)(run=[\w-]+|norun)(?:\s|$)/.test(b.info));
    assert.deepEqual(
      unmarked.map((b) => b.code.split('\n')[0]),
      [],
      'blocks without run=NAME or norun',
    );
    assert.deepEqual([...progs.keys()].sort(), ['embedded', 'guide', 'worker-a', 'worker-b']);
  });

  it('the guide program runs every step and ends by itself', async () => {
    const p = await run('guide');
    const code = await exitWithin(p, 180_000, 'the guide program');
    const out = output(p);
    assert.equal(code, 0, out);
    for (const line of [
      /alice is [a-z2-7]{52}, bob is [a-z2-7]{52}/,
      /bob paired with ([a-z2-7]{52}); alice saw [a-z2-7]{52}/,
      /bob's label for alice: alice/,
      /connected: true, true/,
      /bob: 3145728 bytes handed over/,
      /alice got "hello alice" and 3145728 bytes/,
      /alice streamed in: one two three/,
      /alice got 10 datagrams; last seq \d+, \d+ ms old/,
      /bob → alice: host\/(?:host|prflx), \d+ messages, 10 datagrams sent, 0 replays dropped/,
      /not paired: unknown_peer/,
      /closed: done; alice saw 1000 "done" \(by peer: true\)/,
      /guide finished/,
    ]) {
      assert.match(out, line);
    }
  });

  it('the two-process workers pair, echo, and both exit by themselves', async () => {
    const a = await run('worker-a');
    const [invite] = await a.waitForLine(/^p2ptls:\/\/invite\?\S+$/, 120_000);
    const b = await run('worker-b', [invite]);
    const [codeB, codeA] = [
      await exitWithin(b, 120_000, 'worker B'),
      await exitWithin(a, 60_000, 'worker A'),
    ];
    assert.equal(codeB, 0, output(b));
    assert.equal(codeA, 0, output(a));
    assert.match(output(b), /^out: echo: hello from B$/m);
    assert.match(output(a), /paired with [a-z2-7]{52}/);
    assert.match(output(a), /session ended: done/);
  });

  it('the embedded signaling server program runs and ends by itself', async () => {
    const p = await run('embedded');
    assert.equal(await exitWithin(p, 60_000, 'the embedded-server program'), 0, output(p));
    assert.match(output(p), /server at http:\/\/127\.0\.0\.1:\d+; we are online: true/);
  });

  it('the error table lists every error code', async () => {
    const md = await readFile(GUIDE, 'utf8');
    const missing = Object.values(ErrorCodes).filter((c) => !md.includes(`| \`${c}\``));
    assert.deepEqual(missing, [], 'error codes missing from the table in docs/API.md');
  });
});
