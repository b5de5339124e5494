/**
 * The CLI's answers to mistakes, as a user sees them: exit codes from the documented table, one plain
 * line on stderr, no stack trace; and --json output that parses. No WebRTC here: these fail before any.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCodes } from '../../src/cli/exit-codes.js';
import { PublicIdentity } from '../../src/identity/identity.js';
import { assertCleanFailure, cli, startCli, tempDir } from './_cli.js';

/** A loopback port where nothing listens (bound, then closed). */
function deadPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const STRANGER = 'a'.repeat(52);

describe('p2ptls CLI: errors and exit codes', () => {
  let root: string;
  let data: string;
  let peerId: string;

  before(async () => {
    root = await tempDir();
    data = join(root, 'me');
    const r = await cli(['--data', data, '--json', 'id']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.toString()) as { peerId: string; created: boolean };
    assert.equal(out.created, true);
    peerId = out.peerId;
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('--help documents every command and the exit codes, and exits 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    const help = r.stdout.toString();
    for (const cmd of [
      'id',
      'invite',
      'pair',
      'pairs',
      'listen',
      'connect',
      'send',
      'receive',
      'signal',
      'bench',
    ]) {
      assert.match(help, new RegExp(`^  ${cmd}\\b`, 'm'), `--help lists ${cmd}`);
    }
    for (const code of Object.values(ExitCodes)) assert.match(help, new RegExp(`^  ${code}\\s`, 'm'));
  });

  it('id is stable across runs, and --export prints a public identity that imports', async () => {
    const again = await cli(['--data', data, 'id']);
    assert.equal(again.code, 0);
    assert.equal(again.stdout.toString().trim(), peerId);
    const exported = await cli(['--data', data, 'id', '--export']);
    assert.equal(exported.code, 0);
    const pub = await PublicIdentity.import(exported.stdout.toString());
    assert.equal(pub.peerId, peerId);
    assert.doesNotMatch(exported.stdout.toString(), /secret|pkcs8/i);
  });

  it('an unknown option or a missing argument is a usage error (2)', async () => {
    const r = await cli(['--data', data, 'send', '--frobnicate']);
    assert.equal(r.code, ExitCodes.USAGE);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    const missing = await cli(['--data', data, 'pair']);
    assert.equal(missing.code, ExitCodes.USAGE);
    assert.match(missing.stderr, /missing required argument/);
  });

  it('a data directory without identity: 3, and nothing is created there', async () => {
    const empty = join(root, 'nobody');
    const r = await cli(['--data', empty, 'pairs']);
    assertCleanFailure(r, ExitCodes.NO_IDENTITY, /no identity in .*nobody.*p2ptls id/);
    const c = await cli(['--data', empty, 'connect', STRANGER]);
    assertCleanFailure(c, ExitCodes.NO_IDENTITY, /no identity/);
    assert.equal(existsSync(empty), false, 'a failing command must not create the data directory');
  });

  it('bad invites: 4, with what is wrong, before any network or identity', async () => {
    const cases: [string, RegExp][] = [
      ['hello', /invite must start with p2ptls:\/\/invite\?/],
      [`p2ptls://invite?v=1&peer=${STRANGER}`, /token/],
      [`p2ptls://invite?v=1&peer=${STRANGER}&token=AAAAAAAAAAAAAAAAAAAAAA&exp=1000`, /expired/],
      ['p2ptls://invite?v=2&peer=x&token=y', /version/],
    ];
    const results = await Promise.all(
      cases.map(([invite]) => cli(['--data', join(root, 'nobody-2'), 'pair', invite])),
    );
    results.forEach((r, i) => {
      assertCleanFailure(r, ExitCodes.BAD_INVITE, cases[i]![1]);
    });
  });

  it('unknown peers: 5 for connect, send and pairs remove, also for a name that fits no paired peer', async () => {
    const file = join(root, 'f.txt');
    await writeFile(file, 'x');
    assertCleanFailure(
      await cli(['--data', data, 'connect', STRANGER]),
      ExitCodes.UNKNOWN_PEER,
      /not paired/,
    );
    assertCleanFailure(
      await cli(['--data', data, 'send', STRANGER, file]),
      ExitCodes.UNKNOWN_PEER,
      /not paired/,
    );
    assertCleanFailure(
      await cli(['--data', data, 'pairs', 'remove', STRANGER]),
      ExitCodes.UNKNOWN_PEER,
      /not paired/,
    );
    assertCleanFailure(
      await cli(['--data', data, 'connect', 'bob']),
      ExitCodes.UNKNOWN_PEER,
      /"bob" names no paired peer.*at least 4 characters/,
    );
  });

  it('a file that does not exist, an --out that is a file: 10', async () => {
    const file = join(root, 'f.txt');
    await writeFile(file, 'x');
    const r = await cli(['--data', data, 'send', STRANGER, join(root, 'missing.bin')]);
    assertCleanFailure(r, ExitCodes.FILE, /missing\.bin/);
    const out = await cli(['--data', data, 'receive', '--out', file]);
    assertCleanFailure(out, ExitCodes.FILE, /f\.txt is not a directory/);
  });

  it('no signaling server at the URL: 6, saying how to start one', async () => {
    const url = `http://127.0.0.1:${await deadPort()}`;
    const r = await cli(['--data', data, '--signal', url, 'invite']);
    assertCleanFailure(
      r,
      ExitCodes.NETWORK,
      /cannot reach the signaling server .*connection refused.*p2ptls signal/,
    );
    assertCleanFailure(
      await cli(['--data', data, '--signal', 'ftp://x', 'invite']),
      ExitCodes.USAGE,
      /http\(s\) or ws\(s\)/,
    );
  });

  it('a reader that stops early (`p2ptls --help | head -1`) is no error', async () => {
    const p = startCli(['--help']);
    p.child.stdin.end();
    // Our end of the pipe closes before the CLI writes: its writes meet EPIPE, as behind `head`.
    p.child.stdout.destroy();
    const r = await p.done;
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|unexpected error/);
  });

  it('--json pairs parses (an empty list)', async () => {
    const r = await cli(['--data', data, '--json', 'pairs']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.toString()), []);
  });
});
