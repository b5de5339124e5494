/**
 * What the demo sends inside a p2ptls connection's TCP mode. p2ptls already authenticates, orders and
 * frames every message, so this layer only says what a message *is*:
 *
 *   0x01 ‖ UTF-8 JSON   a control message (chat, file offer/result), validated by {@link ControlSchema}
 *   0x02 ‖ u32 id ‖ u64 offset ‖ bytes   one chunk of a file being sent
 *
 * Anything else, or JSON that does not validate, is rejected with a P2PTLSError (`malformed`), so a buggy
 * or hostile peer can make the page show an error but never corrupt its state.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { fail } from '../../src/errors.js';

export const CONTROL = 0x01;
export const FILE_CHUNK = 0x02;
const CHUNK_HEADER = 1 + 4 + 8;

/** Chat text is capped so one message cannot fill the page. */
export const MAX_CHAT_CHARS = 4000;
/** Largest file the demo sends or accepts. */
export const MAX_FILE_BYTES = 512 * 1024 * 1024;
/** Received bytes are moved from JS memory into a Blob (which the browser may keep on disk) this often. */
const SPILL_BYTES = 16 * 1024 * 1024;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const ControlSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('chat'),
      id: z.string().min(1).max(64),
      text: z.string().min(1).max(MAX_CHAT_CHARS),
    })
    .strict(),
  z
    .object({
      type: z.literal('file-offer'),
      id: z.number().int().min(0).max(0xffff_ffff),
      name: z.string().min(1).max(255),
      mime: z.string().max(255),
      size: z.number().int().min(0).max(MAX_FILE_BYTES),
      sha256: Sha256Hex,
    })
    .strict(),
  z
    .object({
      type: z.literal('file-result'),
      id: z.number().int().min(0).max(0xffff_ffff),
      ok: z.boolean(),
      sha256: Sha256Hex.optional(),
      reason: z.string().max(500).optional(),
    })
    .strict(),
  z.object({ type: z.literal('video'), on: z.boolean() }).strict(),
]);

export type Control = z.infer<typeof ControlSchema>;

export interface FileChunk {
  readonly type: 'file-chunk';
  readonly id: number;
  readonly offset: number;
  readonly data: Uint8Array;
}

export type AppMessage = Control | FileChunk;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeControl(message: Control): Uint8Array {
  const json = encoder.encode(JSON.stringify(ControlSchema.parse(message)));
  const out = new Uint8Array(1 + json.length);
  out[0] = CONTROL;
  out.set(json, 1);
  return out;
}

export function encodeFileChunk(id: number, offset: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHUNK_HEADER + data.length);
  const view = new DataView(out.buffer);
  out[0] = FILE_CHUNK;
  view.setUint32(1, id);
  view.setBigUint64(5, BigInt(offset));
  out.set(data, CHUNK_HEADER);
  return out;
}

/** Decodes one TCP-mode message of the demo; throws P2PTLSError `malformed` on anything else. */
export function decodeAppMessage(bytes: Uint8Array): AppMessage {
  if (bytes.length === 0) throw fail('malformed', 'empty message');
  if (bytes[0] === CONTROL) {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(bytes.subarray(1)));
    } catch (err) {
      throw fail('malformed', 'control message is not UTF-8 JSON', err);
    }
    const parsed = ControlSchema.safeParse(json);
    if (!parsed.success)
      throw fail('malformed', `invalid control message: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }
  if (bytes[0] === FILE_CHUNK) {
    if (bytes.length < CHUNK_HEADER) throw fail('malformed', 'truncated file chunk header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const offset = view.getBigUint64(5);
    if (offset > BigInt(MAX_FILE_BYTES)) throw fail('malformed', 'file chunk offset out of range');
    return {
      type: 'file-chunk',
      id: view.getUint32(1),
      offset: Number(offset),
      data: bytes.subarray(CHUNK_HEADER),
    };
  }
  throw fail('malformed', `unknown message type 0x${bytes[0]?.toString(16).padStart(2, '0')}`);
}

const hex = (digest: Uint8Array) => [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');

/**
 * Lower-case hex SHA-256 of a Blob (a File), read in slices: incremental, so a large file is never in
 * memory whole (WebCrypto's digest has no incremental form).
 */
export async function sha256OfBlob(blob: Blob, sliceBytes = 4 * 1024 * 1024): Promise<string> {
  const h = sha256.create();
  for (let at = 0; at < blob.size; at += sliceBytes) {
    h.update(new Uint8Array(await blob.slice(at, at + sliceBytes).arrayBuffer()));
  }
  return hex(h.digest());
}

/**
 * Reassembles one incoming file from its chunks: they must arrive in order (TCP mode guarantees it, so a
 * gap means a broken or hostile sender), never beyond the announced size. Memory grows only with what
 * actually arrived (an offer alone reserves nothing), and is moved into a Blob every 16 MiB; the SHA-256
 * is computed as the bytes come, and {@link finish} compares it with the offer's.
 */
export class IncomingFile {
  private readonly hash = sha256.create();
  private blob = new Blob([]);
  private pending: Uint8Array<ArrayBuffer>[] = [];
  private pendingBytes = 0;
  received = 0;

  constructor(readonly offer: Extract<Control, { type: 'file-offer' }>) {}

  get complete(): boolean {
    return this.received === this.offer.size;
  }

  add(chunk: FileChunk): void {
    if (chunk.offset !== this.received) {
      throw fail('malformed', `file ${this.offer.id}: chunk at ${chunk.offset}, expected ${this.received}`);
    }
    if (chunk.offset + chunk.data.length > this.offer.size) {
      throw fail(
        'message_too_large',
        `file ${this.offer.id}: more bytes than the announced ${this.offer.size}`,
      );
    }
    this.hash.update(chunk.data);
    // A copy: the chunk is a view into a received message the caller may reuse.
    this.pending.push(chunk.data.slice());
    this.pendingBytes += chunk.data.length;
    this.received += chunk.data.length;
    if (this.pendingBytes >= SPILL_BYTES) this.spill();
  }

  private spill(): void {
    this.blob = new Blob([this.blob, ...this.pending]);
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** The file once complete and matching the announced SHA-256; else a P2PTLSError. */
  async finish(): Promise<{ blob: Blob; sha256: string }> {
    if (!this.complete) throw fail('malformed', `file ${this.offer.id}: incomplete`);
    const digest = hex(this.hash.digest());
    if (digest !== this.offer.sha256) {
      throw fail('malformed', `file ${this.offer.id}: SHA-256 mismatch (got ${digest.slice(0, 12)}…)`);
    }
    this.spill();
    return { blob: this.blob, sha256: digest };
  }
}
