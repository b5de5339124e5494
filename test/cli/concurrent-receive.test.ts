/**
 * Issue 13, point 1: two paired peers send a file of the same name to one `p2ptls listen --out DIR`.
 * Before the fix both transfers wrote into the same part file: the receiver reported one sender's file
 * as "SHA-256 verified" while the file on disk held the other sender's bytes (or a mix). Real processes
 * throughout: a signaling server from `p2ptls signal`, three identities in real data directories, one
 * listener and two senders, loopback only.
 *
 * Whatever the interleaving, the claims must be true: every file a sender was told is verified, and
 * every file the receiver reports as received, is on disk byte for byte as that sender sent it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCodes } from '../../src/cli/exit-codes.js';
import { until } from '../helpers/hosts.js';
import {
  assertCleanFailure,
  type CliProcess,
  type CliResult,
  cli,
  sha256File,
  startCli,
  startSignal,
  tempDir,
} from './_cli.js';

const MiB = 1024 * 1024;

function jsonLines(stdout: Buffer | string): Record<string, unknown>[] {
  return stdout
    .toString()
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** One sender: its identity, the file it sent and how its `send` ended. */
interface Sent {
  peerId: string;
  file: string;
  sha256: string;
  result: CliResult;
}

/**
 * The claims both sides made are true on disk: each `received` event names a file that holds exactly
 * the bytes of the file its peer sent; each sender that exited 0 has its file, byte for byte, in the
 * inbox; and no visible file in the inbox is anything but one sender's whole file.
 */
async function assertClaimsHold(inbox: string, receiverStdout: string, senders: Sent[]): Promise<void> {
  const byPeer = new Map(senders.map((s) => [s.peerId, s]));
  const received = jsonLines(receiverStdout).filter((e) => e.event === 'received');
  for (const e of received) {
    const s = byPeer.get(e.peerId as string);
    assert.ok(s, `received event from an unknown peer: ${JSON.stringify(e)}`);
    const onDisk = await sha256File(e.path as string);
    assert.equal(
      onDisk,
      e.sha256,
      `the receiver reported ${e.path} from ${s.peerId.slice(0, 8)} as verified with SHA-256 ${e.sha256}, but the file on disk has ${onDisk}`,
    );
    assert.equal(onDisk, s.sha256, `${e.path} is not the file ${s.peerId.slice(0, 8)} sent`);
  }
  for (const s of senders) {
    if (s.result.code !== 0) continue;
    const [sent] = jsonLines(s.result.stdout);
    assert.equal(sent?.sha256, s.sha256);
    const theirs = received.find((e) => e.peerId === s.peerId);
    assert.ok(theirs, `${s.peerId.slice(0, 8)} was told its file is verified, the receiver reports nothing`);
    assert.equal(
      await sha256File(theirs.path as string),
      s.sha256,
      `${s.peerId.slice(0, 8)} was told its file is verified, but ${theirs.path} holds other bytes`,
    );
  }
  const shas = new Set(senders.map((s) => s.sha256));
  for (const name of await readdir(inbox)) {
    if (name.startsWith('.')) continue;
    const sha = await sha256File(join(inbox, name));
    assert.ok(shas.has(sha), `${name} in the inbox is no sender's whole file (mixed or truncated)`);
  }
}

describe('p2ptls listen --out: two senders, one file name', () => {
  let root: string;
  let signal: CliProcess;
  let url: string;
  const dirs = { rx: '', a: '', b: '' };
  const ids = { rx: '', a: '', b: '' };
  const as = (who: keyof typeof dirs, ...args: string[]) => ['--data', dirs[who], '--signal', url, ...args];

  /** A `data.bin` of `size` random bytes in a directory of `who`'s own. */
  async function dataFile(who: 'a' | 'b', tag: string, size: number) {
    const dir = join(root, `${who}-${tag}`);
    await mkdir(dir);
    const file = join(dir, 'data.bin');
    await writeFile(file, randomBytes(size));
    return { file, sha256: await sha256File(file) };
  }

  async function startListener(inbox: string, command = 'listen'): Promise<CliProcess> {
    await mkdir(inbox);
    const listener = startCli(as('rx', '--json', command, '--out', inbox));
    listener.child.stdin.end();
    await listener.waitFor(/"event":"listening"/);
    return listener;
  }

  before(async () => {
    root = await tempDir();
    ({ url, proc: signal } = await startSignal());
    await Promise.all(
      (['rx', 'a', 'b'] as const).map(async (who) => {
        dirs[who] = join(root, who);
        const r = await cli(['--data', dirs[who], 'id']);
        assert.equal(r.code, 0, r.stderr);
        ids[who] = r.stdout.toString().trim();
      }),
    );
    const open = startCli(as('rx', 'listen', '--accept-pairing'));
    open.child.stdin.end();
    await open.waitFor(/listening as/);
    for (const who of ['a', 'b'] as const) {
      const r = await cli(as(who, 'pair', ids.rx));
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await open.kill()).code, 0);
  });
  after(async () => {
    await signal?.kill();
    await rm(root, { recursive: true, force: true });
  });

  /**
   * `a` is mid-way through data.bin when `b` offers its own data.bin to `command --out`. Returns how
   * the receiving process ended.
   */
  async function midway(command: 'listen' | 'receive'): Promise<CliResult> {
    const inbox = join(root, `inbox-midway-${command}`);
    const listener = await startListener(inbox, command);
    const a = await dataFile('a', `midway-${command}`, 48 * MiB);
    const b = await dataFile('b', `midway-${command}`, 2 * MiB);

    const aSend = startCli(as('a', '--json', 'send', ids.rx, a.file));
    // Hold the first sender still while its part file is partly written: the second offer then
    // certainly arrives while the first transfer is in progress, whatever the machine's speed.
    const partSize = () =>
      readdirSync(inbox)
        .filter((n) => n.startsWith('.data.bin') && n.endsWith('.p2ptls-part'))
        .map((n) => statSync(join(inbox, n)).size)
        .find((s) => s > 0);
    await until(() => partSize() !== undefined, 60_000, 'the first transfer has started writing');
    aSend.child.kill('SIGSTOP');
    assert.ok((partSize() ?? 0) < 16 * MiB, 'the first transfer is still far from its end');
    let bResult: CliResult;
    try {
      bResult = await cli(as('b', '--json', 'send', ids.rx, b.file));
    } finally {
      aSend.child.kill('SIGCONT');
    }
    const aResult = await aSend.done;
    // `receive` ends by itself after its one file; `listen` runs until stopped.
    const rx = command === 'receive' ? await listener.done : await listener.kill();

    await assertClaimsHold(inbox, rx.stdout.toString(), [
      { peerId: ids.a, ...a, result: aResult },
      { peerId: ids.b, ...b, result: bResult },
    ]);
    assert.equal(aResult.code, 0, aResult.stderr);
    assertCleanFailure(bResult, ExitCodes.TRANSFER, /already being received.*\[transfer_refused\]/);
    assert.equal(await sha256File(join(inbox, 'data.bin')), a.sha256);
    assert.deepEqual(await readdir(inbox), ['data.bin'], 'no part file is left behind');
    return rx;
  }

  it('an offer of data.bin while another peer is mid-way through data.bin is refused; data.bin is the first peer’s file', async () => {
    await midway('listen');
  });

  it('`receive` likewise, and the refused offer does not end it: it exits 0 after the transfer in progress', async () => {
    const rx = await midway('receive');
    assert.equal(rx.code, 0, rx.stderr);
    assert.equal(jsonLines(rx.stdout).filter((e) => e.event === 'received').length, 1);
  });

  it('two peers send data.bin at the same moment: one is stored and verified, the other refused, nothing mixed', async (t) => {
    const inbox = join(root, 'inbox-same-moment');
    const listener = await startListener(inbox);
    const a = await dataFile('a', 'same-moment', 16 * MiB);
    const b = await dataFile('b', 'same-moment', 16 * MiB);

    const [aResult, bResult] = await Promise.all([
      cli(as('a', '--json', 'send', ids.rx, a.file)),
      cli(as('b', '--json', 'send', ids.rx, b.file)),
    ]);
    const rx = await listener.kill();

    const senders = [
      { peerId: ids.a, ...a, result: aResult },
      { peerId: ids.b, ...b, result: bResult },
    ];
    await assertClaimsHold(inbox, rx.stdout.toString(), senders);
    const won = senders.filter((s) => s.result.code === 0);
    const lost = senders.filter((s) => s.result.code !== 0);
    assert.equal(won.length, 1, `exactly one sender succeeds: ${aResult.stderr} ${bResult.stderr}`);
    t.diagnostic(`refused: ${lost[0]?.result.stderr.trim().split('\n').at(-1)}`);
    assertCleanFailure(
      lost[0]!.result,
      ExitCodes.TRANSFER,
      /(already being received|already exists).*\[transfer_refused\]/,
    );
    assert.equal(await sha256File(join(inbox, 'data.bin')), won[0]!.sha256);
    assert.deepEqual(await readdir(inbox), ['data.bin'], 'no part file is left behind');
    assert.equal((await readFile(join(inbox, 'data.bin'))).length, 16 * MiB);
  });
});
