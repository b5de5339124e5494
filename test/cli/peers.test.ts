/**
 * Two (and three) CLI peers as separate processes, as users would run them: a signaling server from
 * `p2ptls signal`, identities in real data directories, pairing by invite, a 50 MiB file whose hash is
 * compared, a netcat-style stream through pipes both ways, resume and verification of files, pairing
 * that needs explicit approval, and an offline peer. WebRTC stays on loopback (the CLI's default with a
 * loopback signaling URL; the test runner adds a loopback-only network namespace).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCodes } from '../../src/cli/exit-codes.js';
import { partFileName } from '../../src/cli/transfer.js';
import {
  assertCleanFailure,
  type CliProcess,
  cli,
  sha256File,
  startCli,
  startSignal,
  tempDir,
} from './_cli.js';

const MiB = 1024 * 1024;

/** One JSON object per stdout line, as --json promises. */
function jsonLines(stdout: Buffer | string): Record<string, unknown>[] {
  return stdout
    .toString()
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('p2ptls CLI: two peers', () => {
  let root: string;
  let signal: CliProcess;
  let url: string;
  const dirs = { alice: '', bob: '', carol: '' };
  const ids = { alice: '', bob: '', carol: '' };
  const as = (who: keyof typeof dirs, ...args: string[]) => ['--data', dirs[who], '--signal', url, ...args];

  before(async () => {
    root = await tempDir();
    ({ url, proc: signal } = await startSignal());
    await Promise.all(
      (['alice', 'bob', 'carol'] as const).map(async (who) => {
        dirs[who] = join(root, who);
        const r = await cli(['--data', dirs[who], 'id']);
        assert.equal(r.code, 0, r.stderr);
        ids[who] = r.stdout.toString().trim();
      }),
    );
  });
  after(async () => {
    await signal?.kill();
    await rm(root, { recursive: true, force: true });
  });

  it('pair by invite: `invite` waits, `pair <invite>` completes it, both sides list the pair', async () => {
    const inviter = startCli(as('alice', '--json', 'invite'));
    const [line] = await inviter.waitFor(/^\{"invite".*$/m);
    const { invite } = JSON.parse(line) as { invite: string };
    const paired = await cli(as('bob', '--json', 'pair', invite, '--label', 'alice'));
    assert.equal(paired.code, 0, paired.stderr);
    assert.deepEqual(jsonLines(paired.stdout), [{ paired: ids.alice, label: 'alice' }]);
    const inviterDone = await inviter.done;
    assert.equal(inviterDone.code, 0, inviterDone.stderr);
    assert.deepEqual(jsonLines(inviterDone.stdout)[1], { paired: ids.bob });

    const [alicePairs, bobPairs] = [
      await cli(as('alice', '--json', 'pairs')),
      await cli(as('bob', '--json', 'pairs')),
    ];
    assert.deepEqual(
      (JSON.parse(alicePairs.stdout.toString()) as { peerId: string }[]).map((p) => p.peerId),
      [ids.bob],
    );
    const bobList = JSON.parse(bobPairs.stdout.toString()) as {
      peerId: string;
      label: string;
      trust: string;
    }[];
    assert.deepEqual(
      bobList.map(({ peerId, label, trust }) => ({ peerId, label, trust })),
      [{ peerId: ids.alice, label: 'alice', trust: 'paired' }],
    );
    // An invite is good for one pairing only, and only while its maker waits.
    const reused = await cli(as('carol', 'pair', invite, '--timeout', '20s'));
    assert.ok(reused.code === ExitCodes.AUTH || reused.code === ExitCodes.NETWORK, reused.stderr);
  });

  it('send → receive: a 50 MiB file arrives intact (SHA-256 compared)', async (t) => {
    const file = join(root, 'fifty.bin');
    await writeFile(file, randomBytes(50 * MiB));
    const inbox = join(root, 'alice-inbox');
    await mkdir(inbox);
    const receiver = startCli(as('alice', '--json', 'receive', '--out', inbox));
    await receiver.waitFor(/"event":"listening"/);
    const sender = await cli(as('bob', '--json', 'send', ids.alice, file));
    assert.equal(sender.code, 0, sender.stderr);
    const received = await receiver.done;
    assert.equal(received.code, 0, received.stderr);

    const expected = await sha256File(file);
    assert.equal(await sha256File(join(inbox, 'fifty.bin')), expected);
    const [sent] = jsonLines(sender.stdout);
    assert.equal(sent?.event, 'sent');
    assert.equal(sent?.sha256, expected);
    assert.equal(sent?.size, 50 * MiB);
    const got = jsonLines(received.stdout).find((e) => e.event === 'received');
    assert.equal(got?.sha256, expected);
    assert.equal(got?.peerId, ids.bob);
    t.diagnostic(`50 MiB: ${sent?.ms} ms, ${sent?.mbPerSecond} MB/s (sender's clock, offer to verified)`);
  });

  it('connect ↔ listen: stdin → peer → stdout in both directions through pipes; EOF ends both', async () => {
    const toBob = randomBytes(300 * 1024);
    const toAlice = randomBytes(200 * 1024);
    const listener = startCli(as('alice', 'listen', '--once'));
    // Written before the session exists: the listener reads stdin only once a stream opens.
    listener.child.stdin.end(toBob);
    await listener.waitFor(/listening as/);
    const connector = await cli(as('bob', 'connect', ids.alice), { input: toAlice });
    assert.equal(connector.code, 0, connector.stderr);
    const listened = await listener.done;
    assert.equal(listened.code, 0, listened.stderr);
    assert.ok(
      connector.stdout.equals(toBob),
      `bob got ${connector.stdout.length} bytes, expected ${toBob.length}`,
    );
    assert.ok(
      listened.stdout.equals(toAlice),
      `alice got ${listened.stdout.length} bytes, expected ${toAlice.length}`,
    );
  });

  it('an interrupted file resumes from the part file; a damaged part fails verification (8) and is discarded', async () => {
    const file = join(root, 'six.bin');
    const bytes = randomBytes(6 * MiB);
    await writeFile(file, bytes);
    const sha256 = await sha256File(file);
    const inbox = join(root, 'resume-inbox');
    await mkdir(inbox);
    // The part file of bob's transfer of this file (another peer's offer never reaches it).
    const part = join(inbox, partFileName(ids.bob, { name: 'six.bin', size: bytes.length, sha256 }));
    const sendOnce = async () => {
      const receiver = startCli(as('alice', '--json', 'receive', '--out', inbox));
      await receiver.waitFor(/"event":"listening"/);
      const sender = await cli(as('bob', '--json', 'send', ids.alice, file));
      return { sender, receiver: await receiver.done };
    };

    // What a transfer cut off after 2 MiB leaves behind.
    await writeFile(part, bytes.subarray(0, 2 * MiB));
    const resumed = await sendOnce();
    assert.equal(resumed.sender.code, 0, resumed.sender.stderr);
    const [sent] = jsonLines(resumed.sender.stdout);
    assert.equal(sent?.offset, 2 * MiB);
    assert.equal(sent?.transferred, 4 * MiB);
    assert.equal(await sha256File(join(inbox, 'six.bin')), sha256);
    assert.equal(existsSync(part), false);

    // A part file whose bytes are wrong: the whole-file hash catches it on both sides.
    await rm(join(inbox, 'six.bin'));
    await writeFile(part, Buffer.alloc(2 * MiB));
    const damaged = await sendOnce();
    assertCleanFailure(damaged.sender, ExitCodes.TRANSFER, /SHA-256|verification/);
    assertCleanFailure(damaged.receiver, ExitCodes.TRANSFER, /failed verification.*discarded/);
    assert.equal(existsSync(join(inbox, 'six.bin')), false);
    assert.equal(existsSync(part), false, 'the damaged part file is removed so that a retry starts clean');
    // A different file of the same name is never overwritten.
    await writeFile(join(inbox, 'six.bin'), 'something else');
    const clash = await sendOnce();
    assertCleanFailure(clash.sender, ExitCodes.TRANSFER, /already exists/);
    assert.equal(await readFile(join(inbox, 'six.bin'), 'utf8'), 'something else');
  });

  it('pairing needs explicit approval: declined by plain `listen` (7), accepted with --accept-pairing', async () => {
    const plain = startCli(as('alice', 'listen'));
    plain.child.stdin.end();
    await plain.waitFor(/listening as/);
    const declined = await cli(as('carol', 'pair', ids.alice));
    assertCleanFailure(declined, ExitCodes.AUTH, /declin|reject/i);
    assert.match(plain.stderrText(), new RegExp(`declined a pairing request from ${ids.carol}`));
    // Ctrl-C / SIGTERM is how a listener normally ends: exit 0.
    assert.equal((await plain.kill()).code, 0);

    const open = startCli(as('alice', 'listen', '--accept-pairing'));
    // Nothing to say back: the stream's other direction ends at once.
    open.child.stdin.end();
    await open.waitFor(/listening as/);
    const accepted = await cli(as('carol', '--json', 'pair', ids.alice));
    assert.equal(accepted.code, 0, accepted.stderr);
    await open.waitFor(new RegExp(`paired with ${ids.carol}`));
    const hello = await cli(as('carol', 'connect', ids.alice), { input: 'hi alice' });
    assert.equal(hello.code, 0, hello.stderr);
    await open.waitFor(/received 8 bytes/);
    assert.equal(open.stdoutText(), 'hi alice');
    assert.equal((await open.kill()).code, 0);
  });

  it('a paired peer that is not running: 6, in plain words', async () => {
    const r = await cli(as('bob', 'connect', ids.alice));
    assertCleanFailure(r, ExitCodes.NETWORK, /is not connected to the signaling server/);
  });
});
