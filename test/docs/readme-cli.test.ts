/**
 * The README's two-terminal walkthrough runs as written (issue 16, point 2). Its ```sh block under "The
 * command line" is read from README.md and each command is run in a fresh directory, in order, as a
 * user would type them: `npx p2ptls` is `node bin/p2ptls.js` (what npx runs in a checkout), `npm ci` is
 * skipped (the checkout is installed), a trailing `&` runs the command in the background, a line that is not `npx` runs in `sh`, and the one
 * placeholder, the invite, is replaced by the invite the listener printed, quoted as printed. The
 * signaling server binds the documented default, 127.0.0.1:8080 (the test runner's loopback-only
 * namespace has nothing else on it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type CliProcess, sha256File, startCli, tempDir } from '../cli/_cli.js';
import { ROOT } from '../helpers/processes.js';

/** The commands of the README's walkthrough block, comments stripped. */
async function walkthrough(): Promise<string[]> {
  const md = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = md.slice(md.indexOf('## The command line: two terminals on one machine'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'no sh block in the README section');
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
}

/** Shell words: spaces separate, single quotes group (all the walkthrough uses). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

describe("README: the command line's two-terminal walkthrough", () => {
  let dir: string;
  const background: CliProcess[] = [];
  after(async () => {
    await Promise.all(background.map((p) => p.kill()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every command runs as written', async () => {
    dir = await tempDir('p2ptls-readme-');
    const commands = await walkthrough();
    assert.equal(commands[0], 'npm ci');
    let invite: string | undefined;
    let listener: CliProcess | undefined;

    for (const line of commands.slice(1)) {
      if (!line.startsWith('npx ')) {
        // A plain shell line (making the file to send): run as the user's shell would.
        const r = spawnSync('sh', ['-c', line], { cwd: dir });
        assert.equal(r.status, 0, `${line}\n${r.stderr}`);
        continue;
      }
      const bg = line.endsWith('&');
      const argv = words(bg ? line.slice(0, -1) : line);
      assert.deepEqual(argv.slice(0, 2), ['npx', 'p2ptls'], line);
      const args = argv.slice(2).map((w) => {
        if (!w.startsWith('p2ptls://invite?…')) return w;
        assert.ok(invite, 'the walkthrough pairs before the listener printed an invite');
        return invite;
      });

      const p = startCli(args, {}, dir);
      if (bg) {
        background.push(p);
        await p.waitFor(/^listening http:\/\/127\.0\.0\.1:8080$/m);
        continue;
      }
      if (args.includes('listen')) {
        // The second terminal's commands run while this one waits.
        listener = p;
        background.push(p);
        invite = (await p.waitFor(/^'(p2ptls:\/\/invite\?[^']+)'$/m))[1];
        await p.waitFor(/listening as/);
        continue;
      }
      if (args.includes('connect')) {
        // Both sides end their input (Ctrl-D): the session ends, and `connect` exits 0.
        p.child.stdin.end('hello from bob\n');
        await listener!.waitFor(/stream from .* opened/);
        listener!.child.stdin.end('hello from alice\n');
        const r = await p.done;
        assert.equal(r.code, 0, `${line}\n${r.stderr}`);
        assert.equal(r.stdout.toString(), 'hello from alice\n');
        await listener!.waitFor(/stream from .* ended/);
        assert.match(listener!.stdoutText(), /hello from bob\n/);
        continue;
      }
      p.child.stdin.end();
      const r = await p.done;
      assert.equal(r.code, 0, `${line}\n${r.stderr}`);
    }

    // What the walkthrough promised: the file arrived in ./inbox, verified.
    assert.ok(listener, 'the walkthrough runs a listener');
    assert.equal(await sha256File(join(dir, 'inbox', 'big.iso')), await sha256File(join(dir, 'big.iso')));
    assert.equal(listener.child.exitCode, null, 'the listener is still running');
  });
});
