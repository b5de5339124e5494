/**
 * The TCP-mode record layer (PROTOCOL.md §5): one record per transport message, implicit sequence
 * numbers, messages of any size split into records and reassembled, small messages batched.
 */
import { fail } from '../errors.js';
import { ByteReader, ByteWriter } from '../util/bytes.js';
import { type AeadProvider, sealWithHeader } from './aead.js';
import { DataFlag, RELIABLE_HEADER_LEN, RecordType, TAG_LEN } from './constants.js';
import { type ControlMessage, decodeControl } from './control.js';
import type { RecordProtection, TrafficKeys } from './traffic-keys.js';

/** A record before encryption. */
export interface PlainRecord {
  type: number;
  flags: number;
  plaintext: Uint8Array;
}

/** Encrypts one record: header ‖ AES-GCM(plaintext) with the header as AAD. */
export async function sealRecord(
  aead: AeadProvider,
  p: RecordProtection,
  header: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const { key, iv } = await p.material;
  return sealWithHeader(aead, key, p.nonce(iv), header, plaintext);
}

/**
 * Splits messages into data records. Messages that fit together in one record are batched (so a burst of
 * small messages costs one AEAD call, not one per message); a message larger than a record is fragmented.
 */
export function frameMessages(messages: readonly Uint8Array[], recordSize: number): PlainRecord[] {
  const out: PlainRecord[] = [];
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  const flushBatch = () => {
    if (batch.length === 1) {
      out.push({ type: RecordType.DATA, flags: DataFlag.FIRST | DataFlag.LAST, plaintext: batch[0]! });
    } else if (batch.length > 1) {
      const w = new ByteWriter(batchBytes);
      for (const m of batch) w.u32(m.length).bytes(m);
      out.push({
        type: RecordType.DATA,
        flags: DataFlag.FIRST | DataFlag.LAST | DataFlag.BATCH,
        plaintext: w.finish(),
      });
    }
    batch = [];
    batchBytes = 0;
  };
  for (const m of messages) {
    if (m.length > recordSize) {
      flushBatch();
      const first = new ByteWriter(recordSize)
        .u32(m.length)
        .bytes(m.subarray(0, recordSize - 4))
        .finish();
      out.push({ type: RecordType.DATA, flags: DataFlag.FIRST, plaintext: first });
      for (let off = recordSize - 4; off < m.length; off += recordSize) {
        const end = Math.min(off + recordSize, m.length);
        out.push({
          type: RecordType.DATA,
          flags: end === m.length ? DataFlag.LAST : 0,
          plaintext: m.subarray(off, end),
        });
      }
      continue;
    }
    if (batchBytes + 4 + m.length > recordSize) flushBatch();
    batch.push(m);
    batchBytes += 4 + m.length;
  }
  flushBatch();
  return out;
}

/** What the reliable channel delivers upwards, in order. */
export type ReliableEvent =
  | { type: 'message'; data: Uint8Array }
  | { type: 'control'; message: ControlMessage }
  | { type: 'key-update'; requestUpdate: boolean };

interface Reassembly {
  buf: Uint8Array;
  filled: number;
}

/**
 * Receiving side of the reliable channel. Records may be passed in faster than they decrypt: each takes
 * its sequence number and key synchronously on arrival, decrypts concurrently, and is delivered in order.
 * The first failure is fatal: it rejects that record and every later one with the same error.
 */
export class ReliableReader {
  private tail: Promise<unknown> = Promise.resolve();
  private partial: Reassembly | null = null;

  constructor(
    private readonly aead: AeadProvider,
    private readonly keys: TrafficKeys,
    private readonly limits: { maxRecordBytes: number; maxMessageBytes: number },
  ) {}

  open(record: Uint8Array): Promise<ReliableEvent[]> {
    let decrypted: Promise<{ type: number; flags: number; plaintext: Uint8Array }>;
    try {
      decrypted = this.decrypt(record);
    } catch (err) {
      decrypted = Promise.reject(err);
    }
    // Once an earlier record failed, this one is never awaited through the chain: keep its own failure
    // from surfacing as an unhandled rejection.
    decrypted.catch(() => {});
    const result = this.tail.then(() => decrypted).then((r) => this.deliver(r.type, r.flags, r.plaintext));
    this.tail = result;
    result.catch(() => {});
    return result;
  }

  private decrypt(record: Uint8Array) {
    if (record.length > this.limits.maxRecordBytes) {
      throw fail('record_overflow', `record of ${record.length} bytes exceeds ${this.limits.maxRecordBytes}`);
    }
    if (record.length < RELIABLE_HEADER_LEN + TAG_LEN) throw fail('malformed', 'record truncated');
    const type = record[0]!;
    const flags = record[1]!;
    if (type !== RecordType.DATA && type !== RecordType.CONTROL && type !== RecordType.KEY_UPDATE) {
      throw fail('unexpected_message', `unexpected record type ${type} on the reliable channel`);
    }
    const protection = this.keys.next();
    // The peer switches keys right after a KEY_UPDATE record; so do we, before the next record arrives.
    if (type === RecordType.KEY_UPDATE) this.keys.rotate();
    const header = record.subarray(0, RELIABLE_HEADER_LEN);
    const body = record.subarray(RELIABLE_HEADER_LEN);
    return (async () => {
      const { key, iv } = await protection.material;
      const plaintext = await this.aead.open(key, protection.nonce(iv), header, body);
      if (!plaintext) {
        throw fail(
          'bad_record_mac',
          `record ${protection.seq} failed authentication (tampered, replayed or reordered)`,
        );
      }
      return { type, flags, plaintext };
    })();
  }

  private deliver(type: number, flags: number, plaintext: Uint8Array): ReliableEvent[] {
    if (type === RecordType.CONTROL) {
      if (flags !== 0) throw fail('malformed', 'control records have no flags');
      return [{ type: 'control', message: decodeControl(plaintext) }];
    }
    if (type === RecordType.KEY_UPDATE) {
      if (flags !== 0 || plaintext.length !== 1 || plaintext[0]! > 1)
        throw fail('malformed', 'bad key update');
      return [{ type: 'key-update', requestUpdate: plaintext[0] === 1 }];
    }
    return this.reassemble(flags, plaintext);
  }

  private reassemble(flags: number, plaintext: Uint8Array): ReliableEvent[] {
    const max = this.limits.maxMessageBytes;
    const first = (flags & DataFlag.FIRST) !== 0;
    const last = (flags & DataFlag.LAST) !== 0;
    const batch = (flags & DataFlag.BATCH) !== 0;
    if (flags & ~(DataFlag.FIRST | DataFlag.LAST | DataFlag.BATCH))
      throw fail('malformed', 'unknown data flags');
    if (first === (this.partial !== null)) {
      throw fail(
        'malformed',
        first ? 'new message before the previous one ended' : 'continuation without a start',
      );
    }
    if (batch && !(first && last)) throw fail('malformed', 'BATCH needs FIRST and LAST');
    if (first && last) {
      if (!batch) {
        if (plaintext.length > max) throw fail('message_too_large', `message exceeds ${max} bytes`);
        return [{ type: 'message', data: plaintext }];
      }
      const r = new ByteReader(plaintext, 'batch');
      const out: ReliableEvent[] = [];
      while (r.remaining > 0) out.push({ type: 'message', data: r.vec32(max) });
      if (out.length < 2) throw fail('malformed', 'a batch holds at least two messages');
      return out;
    }
    if (first) {
      const r = new ByteReader(plaintext, 'first fragment');
      const total = r.u32();
      if (total > max) throw fail('message_too_large', `message of ${total} bytes exceeds ${max}`);
      const chunk = r.rest();
      if (chunk.length >= total) throw fail('malformed', 'a fragmented message must span several records');
      const buf = new Uint8Array(total);
      buf.set(chunk);
      this.partial = { buf, filled: chunk.length };
      return [];
    }
    const p = this.partial!;
    const filled = p.filled + plaintext.length;
    if (
      plaintext.length === 0 ||
      filled > p.buf.length ||
      (last ? filled !== p.buf.length : filled === p.buf.length)
    ) {
      throw fail('malformed', 'fragment lengths do not add up to the message length');
    }
    p.buf.set(plaintext, p.filled);
    p.filled = filled;
    if (!last) return [];
    this.partial = null;
    return [{ type: 'message', data: p.buf }];
  }
}
