/**
 * The receiving side's rules for what a peer may do to the output directory (issue 13, point 1), driven
 * through `receiveFile` with in-memory sessions and a real temporary directory:
 *
 * - a name that passes as a file name but leaves no room for the part file's longer name is refused
 *   before anything is written;
 * - resume state belongs to the peer that created it: another peer offering the same name (even the
 *   same size and SHA-256) is not told how far it got, and can neither finish, discard nor truncate it;
 * - the final move never replaces a file that appeared under the name while the transfer ran.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CliSession, type Control, MAX_FILE_NAME_BYTES } from '../../src/cli/session.js';
import { MAX_RECEIVED_NAME_BYTES, receiveFile } from '../../src/cli/transfer.js';
import type { Connection } from '../../src/host/connection.js';
import type { CloseInfo } from '../../src/protocol/session.js';
import { withCode } from '../helpers/hosts.js';

const MiB = 1024 * 1024;
const ALICE = 'a'.repeat(52);
const MALLORY = 'm'.repeat(52);

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const data = (b: Uint8Array) => Buffer.concat([Buffer.from([1]), b]);
const control = (m: Control) => Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify(m))]);

/**
 * The receiving end of a session with a scripted peer: `push` hands the receiver a message, `end`
 * closes the connection as a lost link would, `said` is what the receiver sent back (control messages).
 */
function scriptedPeer(peerId: string) {
  const queue: (Buffer | null)[] = [];
  let wake: (() => void) | undefined;
  const said: Control[] = [];
  const waiters: (() => void)[] = [];
  let resolveClosed!: (c: CloseInfo) => void;
  const closed = new Promise<CloseInfo>((r) => {
    resolveClosed = r;
  });
  const connection = {
    peerId,
    closed,
    async *messages() {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        const m = queue.shift();
        if (!m) return;
        yield new Uint8Array(m);
      }
    },
    async send(bytes: Uint8Array) {
      if (bytes[0] === 0) said.push(JSON.parse(Buffer.from(bytes.subarray(1)).toString()) as Control);
      for (const w of waiters.splice(0)) w();
    },
    async close() {
      return { code: 1000, reason: 'done', byPeer: false };
    },
  };
  const push = (m: Buffer | null) => {
    queue.push(m);
    wake?.();
  };
  return {
    session: new CliSession(connection as unknown as Connection),
    said,
    push,
    end() {
      resolveClosed({ code: 1000, reason: 'link lost', byPeer: true });
      push(null);
    },
    /** Resolves with the receiver's first control message of type `t`. */
    async heard<T extends Control['t']>(t: T): Promise<Extract<Control, { t: T }>> {
      for (;;) {
        const m = said.find((c) => c.t === t);
        if (m) return m as Extract<Control, { t: T }>;
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

/** Compares by hash: a failing deep-equal of megabyte buffers renders for minutes. */
async function assertFileHolds(path: string, expected: Uint8Array, message: string): Promise<void> {
  assert.equal(sha256(await readFile(path)), sha256(expected), message);
}

type Offer = Extract<Control, { t: 'offer' }>;
const offerOf = (name: string, bytes: Uint8Array): Offer => ({
  t: 'offer',
  name,
  size: bytes.length,
  sha256: sha256(bytes),
});

describe('receiveFile: what a sending peer may do to the output directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'p2ptls-rx-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const partFiles = async () => (await readdir(dir)).filter((n) => n.endsWith('.p2ptls-part'));

  /** Alice starts data.bin (3 MiB) and her link drops after the first MiB: a part file is left. */
  async function aliceInterrupted(file: Uint8Array) {
    const alice = scriptedPeer(ALICE);
    const receiving = receiveFile(alice.session, offerOf('data.bin', file), dir);
    assert.equal((await alice.heard('ready')).offset, 0);
    alice.push(data(file.subarray(0, MiB)));
    alice.end();
    await assert.rejects(receiving, withCode('closed'));
    const parts = await partFiles();
    assert.equal(parts.length, 1);
    const part = join(dir, parts[0]!);
    await assertFileHolds(part, file.subarray(0, MiB), 'the part holds what Alice sent');
    return part;
  }

  it(`a ${MAX_FILE_NAME_BYTES}-byte name, too long for its part file, is refused before anything is written`, async () => {
    const peer = scriptedPeer(ALICE);
    const bytes = randomBytes(1000);
    await assert.rejects(
      receiveFile(peer.session, offerOf('a'.repeat(MAX_FILE_NAME_BYTES), bytes), dir),
      withCode('transfer_refused'),
    );
    assert.deepEqual(
      peer.said.map((m) => (m.t === 'refuse' ? m.code : m.t)),
      ['transfer_refused'],
    );
    assert.deepEqual(await readdir(dir), []);
  });

  it('the longest name accepted is received into a real directory, part file and all', async () => {
    const peer = scriptedPeer(ALICE);
    const bytes = randomBytes(1000);
    // Multi-byte characters: the limit is in bytes of UTF-8, as on the file system.
    const stem = 'é'.repeat(Math.floor((MAX_RECEIVED_NAME_BYTES - 4) / 2));
    const name = `${'x'.repeat(MAX_RECEIVED_NAME_BYTES - 4 - Buffer.byteLength(stem))}${stem}.bin`;
    assert.equal(Buffer.byteLength(name), MAX_RECEIVED_NAME_BYTES);
    const receiving = receiveFile(peer.session, offerOf(name, bytes), dir);
    await peer.heard('ready');
    peer.push(data(bytes));
    peer.push(control({ t: 'eof' }));
    assert.equal((await receiving).sha256, sha256(bytes));
    await assertFileHolds(join(dir, name), bytes, 'the file arrived');
  });

  it('another peer offering the same name, size and SHA-256 starts from 0, and cannot finish or discard the first peer’s part', async () => {
    const file = randomBytes(3 * MiB);
    const alicePart = await aliceInterrupted(file);

    // Mallory copies Alice's offer: she is not told Alice's progress, and her garbage is discarded
    // with her own part file, not Alice's.
    const mallory = scriptedPeer(MALLORY);
    const attempt = receiveFile(mallory.session, offerOf('data.bin', file), dir);
    assert.equal((await mallory.heard('ready')).offset, 0, 'told where another peer’s transfer stopped');
    mallory.push(data(randomBytes(3 * MiB)));
    mallory.push(control({ t: 'eof' }));
    await assert.rejects(attempt, withCode('hash_mismatch'));
    await assertFileHolds(alicePart, file.subarray(0, MiB), 'Alice’s part changed');

    // Alice comes back and resumes where she was.
    const alice = scriptedPeer(ALICE);
    const resumed = receiveFile(alice.session, offerOf('data.bin', file), dir);
    assert.equal((await alice.heard('ready')).offset, MiB);
    alice.push(data(file.subarray(MiB)));
    alice.push(control({ t: 'eof' }));
    const r = await resumed;
    assert.equal(r.offset, MiB);
    await assertFileHolds(join(dir, 'data.bin'), file, 'data.bin is Alice’s file');
    assert.deepEqual(await partFiles(), []);
  });

  it('another peer offering a different file of the same name does not truncate or append to the first peer’s part', async () => {
    const file = randomBytes(3 * MiB);
    const alicePart = await aliceInterrupted(file);

    const other = randomBytes(2 * MiB);
    const mallory = scriptedPeer(MALLORY);
    const attempt = receiveFile(mallory.session, offerOf('data.bin', other), dir);
    assert.equal((await mallory.heard('ready')).offset, 0);
    mallory.push(data(other.subarray(0, MiB / 2)));
    mallory.end();
    await assert.rejects(attempt, withCode('closed'));
    await assertFileHolds(alicePart, file.subarray(0, MiB), 'Alice’s part changed');
  });

  it('a second offer of a name being received is refused, also in other case, and the first goes on', async () => {
    const file = randomBytes(MiB);
    const alice = scriptedPeer(ALICE);
    const receiving = receiveFile(alice.session, offerOf('data.bin', file), dir);
    await alice.heard('ready');
    for (const name of ['data.bin', 'DATA.bin']) {
      const mallory = scriptedPeer(MALLORY);
      await assert.rejects(
        receiveFile(mallory.session, offerOf(name, randomBytes(10)), dir),
        withCode('transfer_refused'),
      );
      const [refusal] = mallory.said;
      assert.equal(refusal?.t === 'refuse' && refusal.code, 'transfer_refused');
      assert.match(refusal?.t === 'refuse' ? refusal.message : '', /already being received/);
    }
    alice.push(data(file));
    alice.push(control({ t: 'eof' }));
    assert.equal((await receiving).sha256, sha256(file));
    await assertFileHolds(join(dir, 'data.bin'), file, 'data.bin is Alice’s file');
  });

  it('the finished file never replaces one that appeared under its name during the transfer', async () => {
    const file = randomBytes(MiB);
    const alice = scriptedPeer(ALICE);
    const receiving = receiveFile(alice.session, offerOf('data.bin', file), dir);
    await alice.heard('ready');
    alice.push(data(file));
    // Someone else (another program, a user) puts a data.bin there before the transfer ends.
    await writeFile(join(dir, 'data.bin'), 'written locally meanwhile');
    alice.push(control({ t: 'eof' }));
    await assert.rejects(receiving, withCode('transfer_refused'));
    assert.equal(await readFile(join(dir, 'data.bin'), 'utf8'), 'written locally meanwhile');
    assert.equal(
      alice.said.some((m) => m.t === 'done'),
      false,
    );
  });
});
