/**
 * What a new user meets in the two-terminal walkthrough (issue 16, points 1–6), with separate CLI
 * processes against a `p2ptls signal` process on loopback:
 *
 * - `listen --invite --out DIR` creates DIR, prints the invite in single quotes, and an invite cut at `&`
 *   by the shell is reported as such;
 * - a `send` in a terminal (a pseudo-terminal from `script`) stopped by Ctrl-C mid-transfer clears its
 *   progress bar, ends its output with a newline and says how to resume; the listener (no --once) keeps
 *   running, and the same command again completes from where the first stopped;
 * - peers are named by a unique peerId prefix (the printed short form included) or a label;
 * - Ctrl-C on the dialing side of `connect` says this side hung up, the listener says the peer did;
 * - `pairs` has a header and shows an empty label as `(none)`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCodes } from '../../src/cli/exit-codes.js';
import { until } from '../helpers/hosts.js';
import { ROOT } from '../helpers/processes.js';
import {
  assertCleanFailure,
  BIN,
  type CliProcess,
  cli,
  sha256File,
  startCli,
  startSignal,
  tempDir,
} from './_cli.js';

const MiB = 1024 * 1024;

/** One shell word. */
const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

describe('p2ptls CLI: the listener a user leaves running', () => {
  let root: string;
  let signal: CliProcess;
  let url: string;
  let listener: CliProcess;
  let inbox: string;
  const dirs = { alice: '', bob: '' };
  const ids = { alice: '', bob: '' };
  const as = (who: keyof typeof dirs, ...args: string[]) => ['--data', dirs[who], '--signal', url, ...args];

  before(async () => {
    root = await tempDir();
    ({ url, proc: signal } = await startSignal());
    for (const who of ['alice', 'bob'] as const) {
      dirs[who] = join(root, who);
      const r = await cli(['--data', dirs[who], 'id']);
      assert.equal(r.code, 0, r.stderr);
      ids[who] = r.stdout.toString().trim();
    }
  });
  after(async () => {
    await listener?.kill();
    await signal?.kill();
    await rm(root, { recursive: true, force: true });
  });

  it('`listen --invite --out DIR` creates DIR and prints the invite quoted; `pair` takes it', async () => {
    inbox = join(root, 'inbox');
    assert.equal(existsSync(inbox), false);
    listener = startCli(as('alice', 'listen', '--invite', '--out', inbox));
    const [, invite] = await listener.waitFor(/^'(p2ptls:\/\/invite\?[^']+)'$/m);
    await listener.waitFor(/listening as/);
    assert.match(listener.stderrText(), /created the output directory .*inbox/);
    assert.ok(statSync(inbox).isDirectory());

    // What bash hands over when the invite is pasted without quotes: everything before the first `&`.
    const cut = await cli(as('bob', 'pair', invite!.slice(0, invite!.indexOf('&'))));
    assertCleanFailure(cut, ExitCodes.BAD_INVITE, /cut at "&".*single quotes/);

    const paired = await cli(as('bob', 'pair', invite!, '--label', 'alice'));
    assert.equal(paired.code, 0, paired.stderr);
    await listener.waitFor(new RegExp(`paired with ${ids.bob}`));
  });

  it('`pairs` has a header, then the peer with the label given at pairing', async () => {
    const bob = await cli(as('bob', 'pairs'));
    assert.equal(bob.code, 0, bob.stderr);
    const [header, row] = bob.stdout.toString().trimEnd().split('\n');
    assert.match(header!, /^PEER ID\s+LABEL\s+TRUST\s+ADDED\s+LAST SEEN$/);
    assert.match(row!, new RegExp(`^${ids.alice}\\s+alice\\s+paired\\s+`));
  });

  it('Ctrl-C mid-`send`: says how to resume; the listener stays; the same command resumes and completes', async () => {
    const file = join(root, 'big.bin');
    await writeFile(file, randomBytes(96 * MiB));
    // The short form the CLI prints, ellipsis included.
    const shortAlice = `${ids.alice.slice(0, 12)}…`;
    // In a terminal, as a user runs it: `script` gives the CLI a pseudo-terminal (so the progress bar is
    // drawn), and Ctrl-C is the ^C byte typed into it, which the terminal turns into SIGINT.
    const command = [process.execPath, BIN, ...as('bob', 'send', shortAlice, file)].map(shellQuote).join(' ');
    const tty = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: ROOT,
      env: { ...process.env, P2PTLS_CLI_SOURCE: '1', P2PTLS_PASSPHRASE: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    tty.stdout.on('data', (b: Buffer) => {
      screen += b.toString('utf8');
    });
    const ttyExit = new Promise<number | null>((resolve) => tty.once('close', (code) => resolve(code)));
    // Mid-transfer: the receiver's part file holds some of the bytes (the wait is bounded, not timed).
    const partSize = async () => {
      const part = (await readdir(inbox)).find((n) => n.endsWith('.p2ptls-part'));
      return part ? statSync(join(inbox, part)).size : 0;
    };
    await until(async () => (await partSize()) >= 4 * MiB, 60_000, 'the part file to grow past 4 MiB');
    assert.match(screen, new RegExp(`matches ${ids.alice}`));
    tty.stdin.write('\x03');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      ttyExit,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`send ignored ^C for 30 s (a bound):\n${screen}`)), 30_000);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(code, ExitCodes.INTERRUPTED, screen);
    assert.match(screen, /sending \[/, 'the progress bar was drawn');
    // The bar's line is cleared (or ended) before the message, which starts a line of its own; the
    // output ends with a newline, so the shell's prompt starts on a fresh line.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's clear-line sequence
    assert.match(screen, /(\n|\r|\x1b\[2K)p2ptls: interrupted \(SIGINT\)\r?\n/);
    assert.match(
      screen,
      /p2ptls: stopped sending .*big\.bin after [\d.]+ MiB of 96\.0 MiB; run the same command again to resume/,
    );
    assert.match(screen, /\n$/);

    await listener.waitFor(/receiving big\.bin stopped: .*the same `send` resumes.*still listening/);
    assert.equal(listener.child.exitCode, null, `the listener exited:\n${listener.stderrText()}`);
    const kept = await partSize();
    assert.ok(kept > 0, 'the part file is kept for the resend');

    // Named by its label this time.
    const again = await cli(as('bob', '--json', 'send', 'alice', file));
    assert.equal(again.code, 0, again.stderr);
    const sent = JSON.parse(again.stdout.toString().trim().split('\n').at(-1)!) as {
      offset: number;
      sha256: string;
    };
    assert.ok(sent.offset > 0, `resumed at ${sent.offset}, expected past 0 (part file had ${kept} bytes)`);
    assert.equal(await sha256File(join(inbox, 'big.bin')), await sha256File(file));
    assert.equal(listener.child.exitCode, null, 'the listener is still running');
  });

  it('Ctrl-C on the dialing side of `connect`: "this side hung up"; the listener says the peer did', async () => {
    const dialer = startCli(as('bob', 'connect', ids.alice.slice(0, 8)));
    await dialer.waitFor(/connected to/);
    await listener.waitFor(/stream from .* opened/);
    dialer.child.kill('SIGINT');
    const r = await dialer.done;
    assert.equal(r.code, ExitCodes.INTERRUPTED, r.stderr);
    assert.match(r.stderr, /this side hung up/);
    assert.doesNotMatch(r.stderr, /the peer hung up/);
    await listener.waitFor(/stream from .* ended \(the peer hung up\).*still listening/);
    assert.equal(listener.child.exitCode, null);
  });

  it('Ctrl-C ends the listener with 0, also mid-transfer (it says what it stopped receiving)', async () => {
    const file = join(root, 'second.bin');
    await writeFile(file, randomBytes(96 * MiB));
    const sender = startCli(as('bob', 'send', 'alice', file));
    sender.child.stdin.end();
    await until(
      async () =>
        (await readdir(inbox)).some(
          (n) => n.startsWith('.second.bin.') && statSync(join(inbox, n)).size >= 4 * MiB,
        ),
      60_000,
      'the second part file to grow past 4 MiB',
    );
    listener.child.kill('SIGINT');
    const stopped = await listener.done;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /stopped receiving second\.bin: what arrived is kept/);
    assert.notEqual((await sender.done).code, 0, 'the sender learns that the transfer did not complete');
  });

  it("the listener's `pairs` shows the label-less pair as (none)", async () => {
    // alice's side was paired by invite, with no label.
    const alice = await cli(as('alice', 'pairs'));
    assert.equal(alice.code, 0, alice.stderr);
    assert.match(alice.stdout.toString(), new RegExp(`^${ids.bob}\\s+\\(none\\)\\s+paired`, 'm'));
  });

  it('a name that fits no paired peer: 5, saying what a name may be', async () => {
    assertCleanFailure(
      await cli(as('bob', 'connect', 'nobody')),
      ExitCodes.UNKNOWN_PEER,
      /names no paired peer/,
    );
  });
});
