/**
 * The small application protocol the CLI speaks inside a p2ptls connection (TCP mode). Every message
 * starts with one tag byte: 0 = a JSON control message, 1 = payload bytes (stream data or file data).
 * The dialer opens with `stream` or `offer`; the listener answers `ready` or `refuse`. `eof` is a
 * half-close, so pipes can end in one direction while the other keeps flowing.
 *
 * Everything received is network input: it is validated here and turned into P2PTLSErrors, never
 * thrown raw.
 */
import { z } from 'zod';
import { type ErrorCode, fail, type P2PTLSError } from '../errors.js';
import type { Connection } from '../host/connection.js';
import { fromUtf8, utf8 } from '../util/bytes.js';

const TAG_CONTROL = 0;
const TAG_DATA = 1;

/** Longest file name accepted (bytes of UTF-8), as on common file systems. */
export const MAX_FILE_NAME_BYTES = 255;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** Control messages of the CLI protocol. */
export const ControlSchema = z.discriminatedUnion('t', [
  /** Dialer: an interactive byte stream (`p2ptls connect`). */
  z.object({ t: z.literal('stream') }),
  /** Dialer: a file it wants to send (`p2ptls send`). */
  z.object({
    t: z.literal('offer'),
    name: z.string().min(1).max(1024),
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    sha256: sha256Hex,
  }),
  /** Listener: go ahead; for files, from this byte offset (what a previous attempt already delivered). */
  z.object({ t: z.literal('ready'), offset: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) }),
  /** Either side: no (or no longer); `code` says why in terms of the P2PTLSError codes. */
  z.object({ t: z.literal('refuse'), code: z.string().max(64), message: z.string().max(500) }),
  /** Either side: no more payload from me. */
  z.object({ t: z.literal('eof') }),
  /** Listener: the file is complete and its SHA-256 matched. */
  z.object({ t: z.literal('done'), sha256: sha256Hex }),
]);
export type Control = z.infer<typeof ControlSchema>;

/** One received message. */
export type Frame = { kind: 'control'; msg: Control } | { kind: 'data'; data: Uint8Array };

/** Refusal codes a peer may name; anything else reads as `transfer_refused`. */
const REFUSAL_CODES = new Set<string>(['transfer_refused', 'hash_mismatch', 'file_error', 'unknown_peer']);

/** The error a peer's `refuse` message stands for. */
export function refusalError(msg: Extract<Control, { t: 'refuse' }>): P2PTLSError {
  const code = (REFUSAL_CODES.has(msg.code) ? msg.code : 'transfer_refused') as ErrorCode;
  return fail(code, `the peer refused: ${msg.message}`);
}

/** A connection speaking the CLI protocol. */
export class CliSession {
  private readonly inbox: AsyncIterator<Uint8Array>;

  constructor(readonly connection: Connection) {
    this.inbox = connection.messages();
  }

  /** Sends a control message. */
  control(msg: Control): Promise<void> {
    const json = utf8(JSON.stringify(msg));
    const out = new Uint8Array(json.length + 1);
    out[0] = TAG_CONTROL;
    out.set(json, 1);
    return this.connection.send(out);
  }

  /** Sends payload bytes that already sit at offset 1 of `framed` (byte 0 is overwritten with the tag). */
  sendFramed(framed: Uint8Array): Promise<void> {
    framed[0] = TAG_DATA;
    return this.connection.send(framed);
  }

  /** Sends payload bytes (copied once to prepend the tag). */
  data(bytes: Uint8Array): Promise<void> {
    const out = new Uint8Array(bytes.length + 1);
    out.set(bytes, 1);
    return this.sendFramed(out);
  }

  /**
   * The next message. Rejects with `malformed` for bytes that are not this protocol, and with the
   * connection's close reason when it closes first.
   */
  async next(): Promise<Frame> {
    const r = await this.inbox.next();
    if (r.done) throw await this.closedError();
    const m = r.value;
    if (m[0] === TAG_DATA) return { kind: 'data', data: m.subarray(1) };
    if (m[0] !== TAG_CONTROL)
      throw fail('malformed', 'the peer sent a message that is not p2ptls CLI protocol');
    let value: unknown;
    try {
      value = JSON.parse(fromUtf8(m.subarray(1)));
    } catch (err) {
      throw fail('malformed', 'the peer sent a control message that is not JSON', err);
    }
    const parsed = ControlSchema.safeParse(value);
    if (!parsed.success) throw fail('malformed', 'the peer sent an invalid control message');
    return { kind: 'control', msg: parsed.data };
  }

  /** The next message, which must be a control message of one of `types` (a `refuse` is thrown). */
  async expect<T extends Control['t']>(...types: T[]): Promise<Extract<Control, { t: T }>> {
    const f = await this.next();
    if (f.kind === 'control' && f.msg.t === 'refuse' && !types.includes('refuse' as T)) {
      throw refusalError(f.msg);
    }
    if (f.kind !== 'control' || !types.includes(f.msg.t as T)) {
      throw fail(
        'malformed',
        `the peer sent ${f.kind === 'data' ? 'data' : f.msg.t}, expected ${types.join(' or ')}`,
      );
    }
    return f.msg as Extract<Control, { t: T }>;
  }

  /** Tells the peer no and why (best effort: the connection may already be gone). */
  async refuse(code: ErrorCode, message: string): Promise<void> {
    await this.control({ t: 'refuse', code, message: message.slice(0, 500) }).catch(() => {});
  }

  /**
   * Closes the connection with a normal close (PROTOCOL.md §5.3): resolves once the peer has read
   * everything sent before it; rejects (`close_unacknowledged`, `truncated`) when that is not known.
   */
  async close(reason = 'done'): Promise<void> {
    const info = await this.connection.close(0, reason);
    if (info.error) throw info.error;
  }

  private async closedError(): Promise<P2PTLSError> {
    const info = await this.connection.closed;
    if (info.error) return fail(info.error.code, `connection lost: ${info.error.message}`);
    return fail('closed', `the peer closed the connection${info.reason ? ` (${info.reason})` : ''}`);
  }
}
