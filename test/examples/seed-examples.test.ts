/**
 * The seed examples (examples/seed/) as a user runs them: separate processes against a real signaling
 * server, with their own stores in temp directories. Only their printed output is checked, because that
 * output is what docs/EXAMPLES.md promises.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  killAll,
  type ManagedProcess,
  ROOT,
  type SignalingProcess,
  spawnProcess,
  startSignalingProcess,
} from '../helpers/processes.js';

let signaling: SignalingProcess;
const dirs: string[] = [];

before(async () => {
  signaling = await startSignalingProcess();
});
after(async () => {
  await killAll();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'p2ptls-seed-test-'));
  dirs.push(dir);
  return dir;
}

function example(name: string, args: string[]): ManagedProcess {
  return spawnProcess(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'examples', 'seed', `${name}.ts`), ...args],
    {
      env: { P2PTLS_SIGNAL: signaling.url, P2PTLS_PASSPHRASE: 'seed examples test' },
    },
  );
}

/**
 * Waits for a clean exit and returns what the process printed on stdout. The timeout only bounds the wait
 * (a client run takes ~3 s on an idle 2-core machine and passed 20 s at load 30).
 */
async function finished(p: ManagedProcess, timeoutMs = 90_000): Promise<string[]> {
  const timer = setTimeout(() => void p.kill(), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  assert.equal(code, 0, `exit ${code}:\n${p.lines.join('\n')}`);
  return p.lines.filter((l) => l.startsWith('out: ')).map((l) => l.slice(5));
}

const PEER_ID = '[a-z2-7]{52}';

test('database: a peer written by one store is read back by a second one; a wrong passphrase is refused', async () => {
  const dir = await tempDir();
  const out = await finished(example('database', [join(dir, 'db')]));
  assert.match(out[0] ?? '', new RegExp(`^recovered peer ${PEER_ID} \\(worker-2, paired\\) from `));
  assert.ok(out[0]?.endsWith(` from ${join(dir, 'db')}`), out[0]);
  assert.equal(out[1], 'wrong passphrase refused: wrong_passphrase');
});

/** Starts `serverName` and `clientName` on a fresh base directory; checks that the two pair with each other. */
async function firstRun(serverName: string, clientName: string, clientArgs: string[] = []) {
  const dir = await tempDir();
  const server = example(serverName, [dir]);
  // The client waits for the invite file itself, as a user's second terminal would.
  const client = example(clientName, [dir, ...clientArgs]);
  const out = await finished(client);
  const [, serverId, clientId] = await server.waitForLine(
    new RegExp(`^server (${PEER_ID}) paired with (${PEER_ID})$`),
  );
  assert.ok(out.includes(`client ${clientId} paired with ${serverId}`), out.join('\n'));
  return { dir, server, out };
}

test('async server and client: they pair once, then every client run gets "hello world"', async () => {
  const { dir, server, out } = await firstRun('server', 'client');
  assert.deepEqual(out.slice(-2), ['got 11 bytes from server', 'got message: hello world from server']);
  await server.waitForLine(/^connection closed: done$/);

  // A second client process loads the pair from its store: no invite this time.
  const again = await finished(example('client', [dir]));
  assert.ok(!again.some((l) => l.startsWith('invite')), again.join('\n'));
  assert.deepEqual(again.slice(-2), ['got 11 bytes from server', 'got message: hello world from server']);
  await server.kill();
  assert.equal(server.lines.filter((l) => l === 'out: sending message hello world').length, 2);
});

test('SLLP server and client: numbered datagrams are printed with seq and sentAt and echoed back', async () => {
  const count = 20;
  const { server, out } = await firstRun('sllp-server', 'sllp-client', [String(count)]);
  const m = out.at(-1)?.match(/^sent (\d+) datagrams, (\d+) came back$/);
  assert.ok(m, out.join('\n'));
  assert.equal(Number(m[1]), count);
  // Datagrams may be lost, even on loopback; most must make the round trip.
  assert.ok(Number(m[2]) >= count / 2, `only ${m[2]} of ${count} came back`);
  await server.waitForLine(/^connection closed$/);
  await server.kill();
  const seen = server.lines
    .map((l) => l.match(/^out: datagram seq=(\d+) sentAt=(\S+): datagram (\d+)$/))
    .filter((x) => x !== null);
  assert.ok(seen.length >= Number(m[2]), server.lines.join('\n'));
  for (const [, seq, sentAt] of seen) {
    assert.ok(Number.isSafeInteger(Number(seq)));
    assert.ok(Math.abs(Date.parse(sentAt!) - Date.now()) < 60_000, `sentAt ${sentAt}`);
  }
});
