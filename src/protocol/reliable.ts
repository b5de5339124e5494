/**
 * The TCP-mode record layer (PROTOCOL.md §5): one record per transport message, implicit sequence
 * numbers, messages of any size split into records and reassembled, small messages batched.
 */
import { fail } from '../errors.js';
import { ByteReader } from '../util/bytes.js';
import {
  type AeadKey,
  type AeadProvider,
  type Plaintext,
  type SealedParts,
  type SyncAead,
  sealJoined,
  sealWithHeader,
} from './aead.js';
import { DataFlag, MAX_CONTROL_RECORD_BYTES, RELIABLE_HEADER_LEN, RecordType, TAG_LEN } from './constants.js';
import { type ControlMessage, decodeControl } from './control.js';
import { type ReceiveWindow, recordCost } from './flow-control.js';
import { recordNonce } from './key-schedule.js';
import type { RecordProtection, TrafficKeys } from './traffic-keys.js';

/** A record before encryption. */
export interface PlainRecord {
  type: number;
  flags: number;
  /**
   * The plaintext as pieces sealed back to back: a batch is its messages behind their length prefixes,
   * a first fragment the message's first bytes behind its length, none of them copied into one buffer.
   */
  plaintext: readonly Uint8Array[];
  /** Bytes of plaintext. */
  length: number;
  /** DATA records: how many messages start in it (0 for a continuation), for its credit (§5.5). */
  starts: number;
}

/** Encrypts one record: header ‖ AES-GCM(plaintext) with the header as AAD. Rejects, never throws. */
export function sealRecord(
  aead: AeadProvider,
  p: RecordProtection,
  header: Uint8Array,
  plaintext: Plaintext,
): Promise<Uint8Array> {
  return withMaterial(p, (key, iv) => sealWithHeader(aead, key, recordNonce(iv, p.seq), header, plaintext));
}

/** `seal` with the record's key and IV: at once when they are derived already (usually: no turn waited). */
function withMaterial<T>(
  p: RecordProtection,
  seal: (key: AeadKey, iv: Uint8Array) => Promise<T>,
): Promise<T> {
  return p.ready ? seal(p.ready.key, p.ready.iv) : p.material.then(({ key, iv }) => seal(key, iv));
}

/**
 * {@link sealRecord} with the header left apart, for an output that copies each record as it takes it:
 * the two are joined in the session's own buffer when the record is handed over, so no record-sized
 * buffer is allocated for it. Rejects, never throws.
 */
export function sealRecordParts(
  aead: AeadProvider,
  p: RecordProtection,
  header: Uint8Array,
  plaintext: Plaintext,
): Promise<SealedParts> {
  return withMaterial(p, (key, iv) =>
    sealJoined(aead, key, recordNonce(iv, p.seq), header, plaintext).then((body) => ({ header, body })),
  );
}

/**
 * {@link sealRecord} within the call, for a synchronous provider once the key is derived; into `into`
 * when given (see {@link SyncAead.sealWithHeader}).
 */
export function sealRecordNow(
  aead: SyncAead,
  p: RecordProtection,
  header: Uint8Array,
  plaintext: Plaintext,
  into?: Uint8Array,
): Uint8Array {
  const { key, iv } = p.ready!;
  return aead.sealWithHeader(key, recordNonce(iv, p.seq), header, plaintext, into);
}

/**
 * Splits messages into data records. Messages that fit together in one record are batched (so a burst of
 * small messages costs one AEAD call, not one per message); a message larger than a record is fragmented.
 */
export function frameMessages(messages: readonly Uint8Array[], recordSize: number): PlainRecord[] {
  const out: PlainRecord[] = [];
  const batch = new Batch();
  for (const m of messages) {
    if (m.length > recordSize) {
      batch.flushInto(out);
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, m.length);
      out.push({
        type: RecordType.DATA,
        flags: DataFlag.FIRST,
        plaintext: [prefix, m.subarray(0, recordSize - 4)],
        length: recordSize,
        starts: 1,
      });
      for (let off = recordSize - 4; off < m.length; off += recordSize) {
        const end = Math.min(off + recordSize, m.length);
        out.push({
          type: RecordType.DATA,
          flags: end === m.length ? DataFlag.LAST : 0,
          plaintext: [m.subarray(off, end)],
          length: end - off,
          starts: 0,
        });
      }
      continue;
    }
    if (batch.bytes + 4 + m.length > recordSize) batch.flushInto(out);
    batch.add(m);
  }
  batch.flushInto(out);
  return out;
}

/** Messages that will share one record (§5.2), each behind its length in a BATCH record of several. */
class Batch {
  private messages: Uint8Array[] = [];
  /** Plaintext bytes of the record, length prefixes included. */
  bytes = 0;

  add(m: Uint8Array): void {
    this.messages.push(m);
    this.bytes += 4 + m.length;
  }

  /** Appends the batch's record (if any) to `out` and starts a new batch. */
  flushInto(out: PlainRecord[]): void {
    const batch = this.messages;
    if (batch.length === 1) {
      const m = batch[0]!;
      out.push({
        type: RecordType.DATA,
        flags: DataFlag.FIRST | DataFlag.LAST,
        plaintext: [m],
        length: m.length,
        starts: 1,
      });
    } else if (batch.length > 1) {
      // The messages themselves are pieces of the plaintext: only their prefixes are new bytes.
      const prefixes = new Uint8Array(4 * batch.length);
      const view = new DataView(prefixes.buffer);
      const plaintext: Uint8Array[] = [];
      batch.forEach((m, i) => {
        view.setUint32(4 * i, m.length);
        plaintext.push(prefixes.subarray(4 * i, 4 * i + 4), m);
      });
      out.push({
        type: RecordType.DATA,
        flags: DataFlag.FIRST | DataFlag.LAST | DataFlag.BATCH,
        plaintext,
        length: this.bytes,
        starts: batch.length,
      });
    }
    if (batch.length > 0) this.messages = [];
    this.bytes = 0;
  }
}

/** What the reliable channel delivers upwards, in order. `cost` is the message's credit (§5.5). */
export type ReliableEvent =
  | { type: 'message'; data: Uint8Array; cost: number }
  | { type: 'control'; message: ControlMessage }
  | { type: 'key-update'; requestUpdate: boolean };

/**
 * A fragmented message being received. Chunks are kept as they arrive and joined at the LAST record: a
 * FIRST record declaring 64 MiB costs what it carries, not 64 MiB (PROTOCOL.md §5.2).
 */
interface Reassembly {
  total: number;
  chunks: Uint8Array[];
  filled: number;
  cost: number;
}

/** Progress of the message being reassembled, for a stall timeout above the protocol layer. */
export interface ReassemblyProgress {
  received: number;
  total: number;
}

/** A record whose header passed the checks, with the key and sequence number it must decrypt under. */
interface CheckedRecord {
  type: number;
  flags: number;
  protection: RecordProtection;
  header: Uint8Array;
  body: Uint8Array;
}

/** A record decrypted and authenticated, to be delivered in its turn by {@link ReliableReader.deliver}. */
export interface OpenedRecord {
  type: number;
  flags: number;
  plaintext: Uint8Array;
}

/**
 * Receiving side of the reliable channel. Records may be passed in faster than they decrypt: each takes
 * its sequence number and key synchronously on arrival ({@link open}) and decrypts concurrently; the
 * caller delivers them in arrival order ({@link deliver}). With a synchronous provider and nothing
 * pending, {@link openNow} does both within the call.
 */
export class ReliableReader {
  private partial: Reassembly | null = null;

  constructor(
    private readonly aead: AeadProvider,
    private readonly keys: TrafficKeys,
    private readonly limits: { maxRecordBytes: number; maxMessageBytes: number },
    private readonly window: ReceiveWindow,
  ) {}

  /** The fragmented message being received, if any. */
  get reassembling(): ReassemblyProgress | undefined {
    return this.partial ? { received: this.partial.filled, total: this.partial.total } : undefined;
  }

  /** Whether {@link openNow} may be called: a synchronous provider and the key derived. */
  get canOpenNow(): boolean {
    return this.aead.sync !== undefined && this.keys.ready;
  }

  /**
   * Decrypts and delivers one record within the call; only when {@link canOpenNow} and no record passed
   * to {@link open} is waiting for {@link deliver}. Throws on failure.
   */
  openNow(record: Uint8Array): ReliableEvent[] {
    const r = this.check(record);
    const { key, iv } = r.protection.ready!;
    const plaintext = this.aead.sync!.open(key, recordNonce(iv, r.protection.seq), r.header, r.body);
    return this.deliver({
      type: r.type,
      flags: r.flags,
      plaintext: this.authenticated(plaintext, r.protection),
    });
  }

  /**
   * Checks the header and takes the record's sequence number and key now, in arrival order; decrypts
   * concurrently with the records around it. Rejects (never throws) with what makes the record fatal.
   */
  open(record: Uint8Array): Promise<OpenedRecord> {
    let r: CheckedRecord;
    try {
      r = this.check(record);
    } catch (err) {
      return Promise.reject(err);
    }
    const p = r.protection;
    // The key is usually derived already: no need to wait a turn for it.
    if (p.ready) return this.decrypt(r, p.ready.key, p.ready.iv);
    return p.material.then(({ key, iv }) => this.decrypt(r, key, iv));
  }

  /** Checks the header and takes the record's sequence number and key; throws what makes it fatal. */
  private check(record: Uint8Array): CheckedRecord {
    if (record.length > this.limits.maxRecordBytes) {
      throw fail('record_overflow', `record of ${record.length} bytes exceeds ${this.limits.maxRecordBytes}`);
    }
    if (record.length < RELIABLE_HEADER_LEN + TAG_LEN) throw fail('malformed', 'record truncated');
    const type = record[0]!;
    const flags = record[1]!;
    if (type !== RecordType.DATA && type !== RecordType.CONTROL && type !== RecordType.KEY_UPDATE) {
      throw fail('unexpected_message', `unexpected record type ${type} on the reliable channel`);
    }
    // Only DATA is flow-controlled (§5.5); other records are small by construction, so a larger one is
    // refused before it costs a decryption.
    if (type !== RecordType.DATA && record.length > MAX_CONTROL_RECORD_BYTES) {
      throw fail('record_overflow', `a type ${type} record of ${record.length} bytes`);
    }
    const protection = this.keys.next();
    // The peer switches keys right after a KEY_UPDATE record; so do we, before the next record arrives.
    if (type === RecordType.KEY_UPDATE) this.keys.rotate();
    const header = record.subarray(0, RELIABLE_HEADER_LEN);
    const body = record.subarray(RELIABLE_HEADER_LEN);
    return { type, flags, protection, header, body };
  }

  private authenticated(plaintext: Uint8Array | null, protection: RecordProtection): Uint8Array {
    if (plaintext) return plaintext;
    throw fail(
      'bad_record_mac',
      `record ${protection.seq} failed authentication (tampered, replayed or reordered)`,
    );
  }

  private decrypt(r: CheckedRecord, key: AeadKey, iv: Uint8Array): Promise<OpenedRecord> {
    return this.aead.open(key, recordNonce(iv, r.protection.seq), r.header, r.body).then((plaintext) => ({
      type: r.type,
      flags: r.flags,
      plaintext: this.authenticated(plaintext, r.protection),
    }));
  }

  /**
   * Delivers a record {@link open} decrypted, strictly in the order the records were opened: flow
   * control, reassembly and the record's meaning. Throws what makes it fatal.
   */
  deliver({ type, flags, plaintext }: OpenedRecord): ReliableEvent[] {
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
        const cost = recordCost(plaintext.length, 1);
        this.window.accept(cost, true);
        return [{ type: 'message', data: plaintext, cost }];
      }
      const r = new ByteReader(plaintext, 'batch');
      const out: { type: 'message'; data: Uint8Array; cost: number }[] = [];
      while (r.remaining > 0) {
        const data = r.vec32(max);
        out.push({ type: 'message', data, cost: recordCost(4 + data.length, 1) });
      }
      if (out.length < 2) throw fail('malformed', 'a batch holds at least two messages');
      this.window.accept(recordCost(plaintext.length, out.length), true);
      return out;
    }
    if (first) {
      const r = new ByteReader(plaintext, 'first fragment');
      const total = r.u32();
      if (total > max) throw fail('message_too_large', `message of ${total} bytes exceeds ${max}`);
      const chunk = r.rest();
      if (chunk.length >= total) throw fail('malformed', 'a fragmented message must span several records');
      const cost = recordCost(plaintext.length, 1);
      this.window.accept(cost, true);
      this.partial = { total, chunks: [chunk], filled: chunk.length, cost };
      return [];
    }
    const p = this.partial!;
    const filled = p.filled + plaintext.length;
    if (plaintext.length === 0 || filled > p.total || (last ? filled !== p.total : filled === p.total)) {
      throw fail('malformed', 'fragment lengths do not add up to the message length');
    }
    const cost = recordCost(plaintext.length, 0);
    this.window.accept(cost, false);
    p.chunks.push(plaintext);
    p.filled = filled;
    p.cost += cost;
    if (!last) return [];
    this.partial = null;
    const data = new Uint8Array(p.total);
    let at = 0;
    for (const c of p.chunks) {
      data.set(c, at);
      at += c.length;
    }
    return [{ type: 'message', data, cost: p.cost }];
  }
}
