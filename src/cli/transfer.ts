/**
 * File transfer over a CLI session: the sender offers name, size and SHA-256; the receiver answers with
 * the offset it already holds (a part file left by the same sender's interrupted attempt at the same
 * file), the rest flows as 1 MiB payload messages, and the receiver reads the whole part file back and
 * checks its hash before the file takes its real name. A mismatch discards the part file, so a retry
 * starts clean.
 *
 * Each transfer owns its part file (named per sender and file, created exclusively) and holds its
 * output name for as long as it runs; the final name is taken without replacing anything. That way two
 * peers sending the same name at once can never write into one file, and what the receiver calls
 * verified is the file on disk.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { type FileHandle, link, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import type { Progress } from './progress.js';
import { type CliSession, type Control, MAX_FILE_NAME_BYTES } from './session.js';

const CHUNK = 1024 * 1024;

/** What a finished transfer reports. */
export interface TransferResult {
  name: string;
  /** Full size of the file. */
  size: number;
  sha256: string;
  /** Bytes that went over the network this time (less than `size` after a resume). */
  transferred: number;
  /** Where this attempt started (0 unless resumed). */
  offset: number;
  /** Time from offer to verified completion, ms. */
  ms: number;
  /** Receiver only: where the file is. */
  path?: string;
}

function fileError(what: string, path: string, err: unknown): P2PTLSError {
  const code = (err as { code?: string }).code;
  const why =
    code === 'ENOENT'
      ? 'no such file or directory'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'ENOSPC'
            ? 'no space left on the device'
            : (err as Error).message;
  return fail('file_error', `cannot ${what} ${path}: ${why}`, err);
}

/** SHA-256 (hex) of a file's first `length` bytes (all of it by default). */
export async function hashFile(path: string, length?: number): Promise<string> {
  const hash = createHash('sha256');
  if (length === 0) return hash.digest('hex');
  try {
    const stream = createReadStream(path, length === undefined ? {} : { end: length - 1 });
    for await (const chunk of stream) hash.update(chunk as Buffer);
  } catch (err) {
    throw fileError('read', path, err);
  }
  return hash.digest('hex');
}

/** Sends the file at `path`; resolves once the receiver has verified it. */
export async function sendFile(
  session: CliSession,
  path: string,
  progress?: Progress,
): Promise<TransferResult> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw fail('file_error', `cannot send ${path}: not a regular file`);
    size = s.size;
  } catch (err) {
    throw isP2PTLSError(err) ? err : fileError('read', path, err);
  }
  const name = basename(path);
  const sha256 = await hashFile(path);
  const t0 = performance.now();
  await session.control({ t: 'offer', name, size, sha256 });
  const { offset } = await session.expect('ready');
  if (offset > size)
    throw fail('malformed', `the peer asked to resume at ${offset}, beyond the file's ${size} bytes`);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw fileError('read', path, err);
  }
  let position = offset;
  try {
    progress?.update(position);
    while (position < size) {
      const n = Math.min(CHUNK, size - position);
      // Read straight behind the tag byte: one buffer per chunk, no extra copy.
      const framed = new Uint8Array(n + 1);
      const { bytesRead } = await handle.read(framed, 1, n, position).catch((err: unknown) => {
        throw fileError('read', path, err);
      });
      if (bytesRead !== n) throw fail('file_error', `${path} changed while it was being sent`);
      await session.sendFramed(framed);
      position += n;
      progress?.update(position);
    }
  } finally {
    await handle.close().catch(() => {});
  }
  await session.control({ t: 'eof' });
  const done = await session.expect('done');
  if (done.sha256 !== sha256) {
    throw fail('hash_mismatch', `the peer stored a file with SHA-256 ${done.sha256}, not ${sha256}`);
  }
  return { name, size, sha256, transferred: size - offset, offset, ms: performance.now() - t0 };
}

/**
 * Part files are named `.<name>.<tag>.p2ptls-part`, where `tag` (32 hex digits) stands for the sender
 * and the file (see {@link partFileName}).
 */
const PART_SUFFIX = '.p2ptls-part';
const PART_TAG_HEX = 32;

/**
 * Longest file name a receiver accepts (bytes of UTF-8). The part file's name is 46 bytes longer and
 * must still fit the file system's 255, so a longer name is refused before the transfer starts, not
 * found out when the part file cannot be created.
 */
export const MAX_RECEIVED_NAME_BYTES = MAX_FILE_NAME_BYTES - (2 + PART_TAG_HEX + PART_SUFFIX.length);

/** A name from the network that may only name a file directly inside the output directory. */
export function checkFileName(name: string): string {
  const ok =
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    // Also what keeps a peer's name from ever colliding with a part file (those start with a dot).
    !name.startsWith('.') &&
    !/[/\\\0]/.test(name) &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    !/[\u0000-\u001f\u007f]/.test(name);
  if (!ok)
    throw fail(
      'transfer_refused',
      `refused a file name that is not a plain file name: ${JSON.stringify(name.slice(0, 80))}`,
    );
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_RECEIVED_NAME_BYTES)
    throw fail(
      'transfer_refused',
      `refused a file name of ${bytes} bytes: the receiver takes names of up to ${MAX_RECEIVED_NAME_BYTES} bytes`,
    );
  return name;
}

type Offer = Pick<Extract<Control, { t: 'offer' }>, 'name' | 'size' | 'sha256'>;

/**
 * The part file of `from`'s transfer of `offer`. The tag hashes the sender's authenticated peerId with
 * the offered name, size and SHA-256: a later offer of the same file by the same peer finds it again
 * (resume), and no offer any other peer can make leads to it, so no peer can learn how far another got,
 * nor append to, truncate, discard or finish another's part file.
 */
export function partFileName(from: PeerId, offer: Offer): string {
  const tag = createHash('sha256')
    .update(JSON.stringify(['p2ptls-cli-part/1', from, offer.name, offer.size, offer.sha256]))
    .digest('hex')
    .slice(0, PART_TAG_HEX);
  return `.${offer.name}.${tag}${PART_SUFFIX}`;
}

/**
 * Output files with a receive in progress, by {@link claimKey}. One set for the whole process on
 * purpose: the file system is shared by every listener and caller in the process, so a name claimed by
 * one must be taken for all of them.
 */
const receiving = new Set<string>();

/**
 * Case and Unicode normalisation folded: file systems that treat `Data.bin` and `data.bin` (or the two
 * spellings of `é`) as one file would otherwise let two transfers race for it. Stricter than needed on
 * Linux, which costs only a retry.
 */
function claimKey(dir: string, name: string): string {
  return join(dir, name.normalize('NFC').toLowerCase());
}

/**
 * Whether a transfer in this process is receiving a file of this name (or of one the file system would
 * take for it) into `outDir`.
 */
export function isBeingReceived(outDir: string, name: string): boolean {
  return receiving.has(claimKey(resolve(outDir), name));
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

const errno = (err: unknown) => (err as { code?: string }).code;

/**
 * Opens the part file of a transfer. A new one is created exclusively (O_EXCL), so it is never a file
 * something else made; one that exists is this sender's own interrupted attempt at this very file
 * (its name says so) and is continued from its length. A link planted under that name is not followed.
 */
async function openPart(part: string, size: number): Promise<{ file: FileHandle; offset: number }> {
  try {
    return { file: await open(part, 'wx+'), offset: 0 };
  } catch (err) {
    if (errno(err) !== 'EEXIST') throw err;
  }
  const file = await open(part, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    const s = await file.stat();
    if (!s.isFile()) throw fail('file_error', `${part} is not a regular file`);
    if (s.size <= size) return { file, offset: s.size };
    await file.truncate(0);
    return { file, offset: 0 };
  } catch (err) {
    await file.close().catch(() => {});
    throw err;
  }
}

/** Writes all of `data` at `position` (a write may take less than it was given). */
async function writeAt(file: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** SHA-256 (hex) of an open file's bytes, read back through the descriptor: what is on disk. */
async function hashOpenFile(file: FileHandle): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK);
  let size = 0;
  for (;;) {
    const { bytesRead } = await file.read(buffer, 0, CHUNK, size);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Gives the verified part file its real name without ever replacing a file: a hard link fails if the
 * name exists (a plain rename would overwrite it), then the part name goes. On file systems without hard
 * links, an exclusively created empty file holds the name first, and the part is renamed over that
 * placeholder, which is ours. Resolves false when the name was taken.
 */
async function linkIntoPlace(part: string, target: string): Promise<boolean> {
  try {
    await link(part, target);
  } catch (err) {
    const code = errno(err);
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err;
    try {
      await (await open(target, 'wx')).close();
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      throw e;
    }
    await rename(part, target);
    return true;
  }
  await unlink(part);
  return true;
}

/**
 * Receives the file a peer offered into `outDir`. Refuses a name that is not a plain file name (or too
 * long), a name another transfer in this process is receiving, and a different file of the same name
 * already in `outDir`; resumes from this sender's own part file of the same file.
 *
 * What is confirmed to the sender (and returned) is the SHA-256 of the bytes on disk, read back from
 * the transfer's own part file before it takes its name.
 */
export async function receiveFile(
  session: CliSession,
  offer: Extract<Control, { t: 'offer' }>,
  outDir: string,
  progressFor?: (name: string, size: number, offset: number) => Progress,
): Promise<TransferResult> {
  let name: string;
  try {
    name = checkFileName(offer.name);
  } catch (err) {
    await session.refuse('transfer_refused', (err as P2PTLSError).message);
    throw err;
  }
  const dir = resolve(outDir);
  const key = claimKey(dir, name);
  if (receiving.has(key)) {
    // Two transfers of one name would race for the same output file: the second waits its turn.
    const message = `a file named ${name} is already being received`;
    await session.refuse('transfer_refused', `${message}; try again once it is done`);
    throw fail('transfer_refused', `refused ${name} from ${session.connection.peerId}: ${message}`);
  }
  receiving.add(key);
  try {
    return await receiveClaimed(session, offer, name, dir, progressFor);
  } finally {
    receiving.delete(key);
  }
}

async function receiveClaimed(
  session: CliSession,
  offer: Extract<Control, { t: 'offer' }>,
  name: string,
  dir: string,
  progressFor?: (name: string, size: number, offset: number) => Progress,
): Promise<TransferResult> {
  const t0 = performance.now();
  const target = join(dir, name);
  const already = async (): Promise<boolean> =>
    (await sizeOf(target)) === offer.size && (await hashFile(target)) === offer.sha256;
  const unchanged = (offset: number, transferred: number): TransferResult => ({
    name,
    size: offer.size,
    sha256: offer.sha256,
    transferred,
    offset,
    ms: performance.now() - t0,
    path: target,
  });
  if ((await sizeOf(target)) !== undefined) {
    if (await already()) {
      // Already here, byte for byte: nothing to send.
      await session.control({ t: 'ready', offset: offer.size });
      await session.expect('eof');
      await session.control({ t: 'done', sha256: offer.sha256 });
      return unchanged(offer.size, 0);
    }
    const message = `a different file named ${name} already exists in the receiver's output directory`;
    await session.refuse('transfer_refused', message);
    throw fail('transfer_refused', `refused ${name}: ${message}`);
  }

  const part = join(dir, partFileName(session.connection.peerId, offer));
  let file: FileHandle;
  let offset: number;
  try {
    ({ file, offset } = await openPart(part, offer.size));
  } catch (err) {
    const e = isP2PTLSError(err) ? err : fileError('write', part, err);
    await session.refuse('file_error', 'the receiver cannot write to its output directory');
    throw e;
  }
  try {
    const progress = progressFor?.(name, offer.size, offset);
    await session.control({ t: 'ready', offset });
    let received = offset;
    try {
      for (;;) {
        const frame = await session.next();
        if (frame.kind === 'control') {
          if (frame.msg.t === 'eof') break;
          if (frame.msg.t === 'refuse')
            throw fail('transfer_refused', `the sender gave up: ${frame.msg.message}`);
          throw fail('malformed', `unexpected ${frame.msg.t} during a file transfer`);
        }
        if (received + frame.data.length > offer.size)
          throw fail('malformed', `the peer sent more than the ${offer.size} bytes it offered`);
        await writeAt(file, frame.data, received).catch((err: unknown) => {
          throw fileError('write', part, err);
        });
        received += frame.data.length;
        progress?.update(received);
      }
    } catch (err) {
      // The part file stays: the next attempt of the same file by the same sender resumes from it.
      const e = isP2PTLSError(err) ? err : fileError('write', part, err);
      if (e.code === 'malformed' || e.code === 'file_error') await session.refuse(e.code, e.message);
      throw e;
    } finally {
      progress?.stop();
    }

    // Verified: the bytes in the part file, read back, not the bytes that came over the network.
    const onDisk = await hashOpenFile(file).catch((err: unknown) => {
      throw fileError('read', part, err);
    });
    if (onDisk.size !== offer.size || onDisk.sha256 !== offer.sha256) {
      await unlink(part).catch(() => {});
      const message =
        onDisk.size !== offer.size
          ? `received ${onDisk.size} of ${offer.size} bytes`
          : `SHA-256 of what arrived is ${onDisk.sha256}, the sender announced ${offer.sha256}`;
      await session.refuse('hash_mismatch', message);
      throw fail('hash_mismatch', `${name} failed verification (${message}); the partial file was discarded`);
    }
    let placed: boolean;
    try {
      placed = await linkIntoPlace(part, target);
      if (placed) {
        // The name now holds the very file that was hashed (the part's name could have been swapped
        // under us by something local with write access to the directory).
        const [mine, there] = [await file.stat(), await stat(target)];
        if (mine.ino !== there.ino || mine.dev !== there.dev) {
          await unlink(target).catch(() => {});
          throw fail('file_error', `${part} was replaced while it was moved into place`);
        }
      }
    } catch (err) {
      const e = isP2PTLSError(err) ? err : fileError('write', target, err);
      await session.refuse('file_error', 'the receiver could not move the file into place');
      throw e;
    }
    if (!placed) {
      await unlink(part).catch(() => {});
      if (await already()) {
        await session.control({ t: 'done', sha256: offer.sha256 });
        return unchanged(offset, offer.size - offset);
      }
      const message = `a different file named ${name} appeared in the receiver's output directory during the transfer; it was left alone`;
      await session.refuse('transfer_refused', message);
      throw fail('transfer_refused', `refused ${name}: ${message}`);
    }
    await session.control({ t: 'done', sha256: onDisk.sha256 });
    return {
      name,
      size: offer.size,
      sha256: onDisk.sha256,
      transferred: offer.size - offset,
      offset,
      ms: performance.now() - t0,
      path: target,
    };
  } finally {
    await file.close().catch(() => {});
  }
}
