/**
 * File transfer over a CLI session: the sender offers name, size and SHA-256; the receiver answers with
 * the offset it already holds (a `.p2ptls-part` file left by an interrupted attempt of the same file),
 * the rest flows as 1 MiB payload messages, and the receiver checks the hash of the whole file before
 * the file takes its real name. A mismatch discards the part file, so a retry starts clean.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
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

/** A name from the network that may only name a file directly inside the output directory. */
export function checkFileName(name: string): string {
  const ok =
    name.length > 0 &&
    Buffer.byteLength(name) <= MAX_FILE_NAME_BYTES &&
    name !== '.' &&
    name !== '..' &&
    !name.startsWith('.') &&
    !/[/\\\0]/.test(name) &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    !/[\u0000-\u001f\u007f]/.test(name);
  if (!ok)
    throw fail(
      'transfer_refused',
      `refused a file name that is not a plain file name: ${JSON.stringify(name.slice(0, 80))}`,
    );
  return name;
}

interface PartMeta {
  sha256: string;
  size: number;
}

async function readPartMeta(path: string): Promise<PartMeta | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Partial<PartMeta>;
    return typeof v.sha256 === 'string' && typeof v.size === 'number'
      ? { sha256: v.sha256, size: v.size }
      : undefined;
  } catch {
    return undefined;
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/**
 * Receives the file a peer offered into `outDir`. Resumes from a matching part file; refuses a name that
 * is not a plain file name, and a different file of the same name already in `outDir`.
 */
export async function receiveFile(
  session: CliSession,
  offer: Extract<Control, { t: 'offer' }>,
  outDir: string,
  progressFor?: (name: string, size: number, offset: number) => Progress,
): Promise<TransferResult> {
  const t0 = performance.now();
  let name: string;
  try {
    name = checkFileName(offer.name);
  } catch (err) {
    await session.refuse('transfer_refused', 'not a plain file name');
    throw err;
  }
  const dir = resolve(outDir);
  const target = join(dir, name);
  const part = join(dir, `.${name}.p2ptls-part`);
  const metaPath = `${part}.json`;
  const existing = await sizeOf(target);
  if (existing !== undefined) {
    if (existing === offer.size && (await hashFile(target)) === offer.sha256) {
      // Already here, byte for byte: nothing to send.
      await session.control({ t: 'ready', offset: offer.size });
      await session.expect('eof');
      await session.control({ t: 'done', sha256: offer.sha256 });
      return {
        name,
        size: offer.size,
        sha256: offer.sha256,
        transferred: 0,
        offset: offer.size,
        ms: 0,
        path: target,
      };
    }
    const message = `a different file named ${name} already exists in the receiver's output directory`;
    await session.refuse('transfer_refused', message);
    throw fail('transfer_refused', `refused ${name}: ${message}`);
  }

  const hash = createHash('sha256');
  let offset = 0;
  const meta = await readPartMeta(metaPath);
  const partSize = await sizeOf(part);
  if (
    meta &&
    meta.sha256 === offer.sha256 &&
    meta.size === offer.size &&
    partSize !== undefined &&
    partSize <= offer.size
  ) {
    offset = partSize;
    const stream = createReadStream(part);
    try {
      for await (const chunk of stream) hash.update(chunk as Buffer);
    } catch (err) {
      throw fileError('read', part, err);
    }
  } else {
    try {
      await writeFile(
        metaPath,
        JSON.stringify({ sha256: offer.sha256, size: offer.size } satisfies PartMeta),
      );
      await writeFile(part, new Uint8Array(0));
    } catch (err) {
      const e = fileError('write', dir, err);
      await session.refuse('file_error', 'the receiver cannot write to its output directory');
      throw e;
    }
  }

  const out = createWriteStream(part, { flags: 'a' });
  const writeFailed = new Promise<never>((_, reject) =>
    out.once('error', (err) => reject(fileError('write', part, err))),
  );
  writeFailed.catch(() => {});
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
      received += frame.data.length;
      if (received > offer.size)
        throw fail('malformed', `the peer sent more than the ${offer.size} bytes it offered`);
      hash.update(frame.data);
      if (!out.write(frame.data))
        await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), writeFailed]);
      progress?.update(received);
    }
    await Promise.race([new Promise<void>((r) => out.end(r)), writeFailed]);
  } catch (err) {
    // The part file stays: the next attempt of the same file resumes from it.
    out.destroy();
    progress?.stop();
    const e = isP2PTLSError(err) ? err : fileError('write', part, err);
    if (e.code === 'malformed' || e.code === 'file_error') await session.refuse(e.code, e.message);
    throw e;
  }
  progress?.stop();
  const digest = hash.digest('hex');
  if (received !== offer.size || digest !== offer.sha256) {
    await rm(part, { force: true });
    await rm(metaPath, { force: true });
    const message =
      received !== offer.size
        ? `received ${received} of ${offer.size} bytes`
        : `SHA-256 of what arrived is ${digest}, the sender announced ${offer.sha256}`;
    await session.refuse('hash_mismatch', message);
    throw fail('hash_mismatch', `${name} failed verification (${message}); the partial file was discarded`);
  }
  try {
    await rename(part, target);
    await rm(metaPath, { force: true });
  } catch (err) {
    throw fileError('write', target, err);
  }
  await session.control({ t: 'done', sha256: digest });
  return {
    name,
    size: offer.size,
    sha256: digest,
    transferred: offer.size - offset,
    offset,
    ms: performance.now() - t0,
    path: target,
  };
}
