/**
 * The TCP-mode record layer (PROTOCOL.md §5): one record per transport message, implicit sequence
 * numbers, messages of any size split into records and reassembled, small messages batched.
 */
import { fail } from '../errors.js';
import { ByteReader } from '../util/bytes.js';
import { type AeadKey, type AeadProvider, type Plaintext, type SyncAead, sealWithHeader } from './aead.js';
import { DataFlag, INNER_HEADER_LEN, MAX_CONTROL_RECORD_BYTES, RecordType, TAG_LEN } from './constants.js';
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

/**
 * Encrypts one record (§5.1): AES-GCM of `type ‖ flags ‖ plaintext` with no associated data; the
 * ciphertext and tag are the whole record. The type and flags travel inside the encryption, as TLS 1.3's
 * inner content type does, and the record needs no header in front of the cipher's output: the pieces are
 * joined before sealing (into a buffer WebCrypto copies from, or straight into node:crypto), instead of
 * the output copied behind a header into a new buffer. That copy and its allocation showed in the
 * profile of bench:protocol's WebCrypto 16 KiB row as 2.3× the garbage collection of raw AES-GCM. Three
 * alternating runs of that row and the 1 MiB row in 64 KiB records, ratio to raw AES-GCM, version 3 →
 * version 4: 0.80, 0.78, 0.82 → 0.93, 0.89, 0.85 (16 KiB) and 0.72, 0.70, 0.70 → 0.90, 0.87, 0.82.
 * Rejects, never throws.
 */
export function sealRecord(
  aead: AeadProvider,
  p: RecordProtection,
  header: Uint8Array,
  plaintext: Plaintext,
): Promise<Uint8Array> {
  return withMaterial(p, (key, iv) =>
    sealWithHeader(aead, key, recordNonce(iv, p.seq), NO_AAD, inner(header, plaintext)),
  );
}

/** `seal` with the record's key and IV: at once when they are derived already (usually: no turn waited). */
function withMaterial<T>(
  p: RecordProtection,
  seal: (key: AeadKey, iv: Uint8Array) => Promise<T>,
): Promise<T> {
  return p.ready ? seal(p.ready.key, p.ready.iv) : p.material.then(({ key, iv }) => seal(key, iv));
}

/**
 * A record's associated data and cleartext header: none (§5.1); what it says is inside the encryption.
 * Sealed with {@link sealWithHeader} and this empty header, a record is the cipher's output itself.
 */
const NO_AAD = new Uint8Array(0);

/** The plaintext a record seals: its type and flags, then its pieces (§5.1). */
function inner(header: Uint8Array, plaintext: Plaintext): readonly Uint8Array[] {
  return plaintext instanceof Uint8Array ? [header, plaintext] : [header, ...plaintext];
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
  return aead.sealWithHeader(key, recordNonce(iv, p.seq), NO_AAD, inner(header, plaintext), into);
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

/**
 * A received record from its arrival until it is delivered in its turn: the key and sequence number it
 * decrypts under, and the decryption under them. Both are taken on arrival, in arrival order, under the
 * key current then; a KEY_UPDATE delivered ahead of it changes them (see {@link ReliableReader.rekeyAhead}).
 */
export class OpenedRecord {
  /** Whether {@link attempt} has settled, with {@link plaintext} (null: it failed authentication). */
  settled = false;
  plaintext: Uint8Array | null = null;
  attempt!: Promise<OpenedRecord>;

  constructor(
    readonly record: Uint8Array,
    /** What it decrypts under, or the error taking it raised (sequence numbers exhausted). */
    public protection: RecordProtection | Error,
  ) {}
}

/**
 * Receiving side of the reliable channel. Records may be passed in faster than they decrypt: each takes
 * its sequence number and key synchronously on arrival ({@link open}) and decrypts concurrently; the
 * caller delivers them in arrival order ({@link deliver}). With a synchronous provider and nothing
 * pending, {@link openNow} does both within the call.
 *
 * A record's type is inside its encryption (§5.1), so a KEY_UPDATE is known only once it is decrypted,
 * while the records behind it may already be decrypting under the key it retires. Those are taken again
 * under the next key when the KEY_UPDATE is delivered, and decrypted again; each is judged only in its
 * turn, under the key its place in the stream gives it. Only the records that were in flight behind a key
 * update pay for that (at most the receiver's own concurrency: 4 on a connection, src/host/record-intake.ts).
 */
export class ReliableReader {
  private partial: Reassembly | null = null;
  /** Records opened and not yet delivered, in arrival order. */
  private readonly ahead: OpenedRecord[] = [];

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
    this.checkLength(record);
    const p = this.keys.next();
    const { key, iv } = p.ready!;
    return this.deliverPlaintext(
      record,
      this.aead.sync!.open(key, recordNonce(iv, p.seq), NO_AAD, record),
      p,
    );
  }

  /**
   * Checks the length and takes the record's sequence number and key now, in arrival order; decrypts
   * concurrently with the records around it. Resolves once decrypted, whether or not it authenticated:
   * {@link deliver} judges it. Rejects (never throws) with what makes the record fatal.
   */
  open(record: Uint8Array): Promise<OpenedRecord> {
    try {
      this.checkLength(record);
    } catch (err) {
      return Promise.reject(err);
    }
    const r = new OpenedRecord(record, this.take());
    this.decrypt(r);
    this.ahead.push(r);
    return r.attempt;
  }

  /** Records longer than the limit or too short for a tag and the inner header are fatal before decryption. */
  private checkLength(record: Uint8Array): void {
    if (record.length > this.limits.maxRecordBytes) {
      throw fail('record_overflow', `record of ${record.length} bytes exceeds ${this.limits.maxRecordBytes}`);
    }
    if (record.length < INNER_HEADER_LEN + TAG_LEN) throw fail('malformed', 'record truncated');
  }

  /** The next sequence number and key; a failure is kept for the record's turn, where a re-key may undo it. */
  private take(): RecordProtection | Error {
    try {
      return this.keys.next();
    } catch (err) {
      return err as Error;
    }
  }

  /** Starts decrypting `r` under its protection; its {@link OpenedRecord.attempt} is this decryption. */
  private decrypt(r: OpenedRecord): void {
    r.settled = false;
    const p = r.protection;
    if (p instanceof Error) {
      // Nothing to decrypt: judged in its turn by the error.
      r.settled = true;
      r.attempt = Promise.resolve(r);
      return;
    }
    const opened = (key: AeadKey, iv: Uint8Array) =>
      this.aead.open(key, recordNonce(iv, p.seq), NO_AAD, r.record);
    // The key is usually derived already: no need to wait a turn for it.
    const decrypted = p.ready
      ? opened(p.ready.key, p.ready.iv)
      : p.material.then(({ key, iv }) => opened(key, iv));
    const attempt: Promise<OpenedRecord> = decrypted.then((plaintext) => this.settle(r, attempt, plaintext));
    r.attempt = attempt;
  }

  /** Keeps an attempt's plaintext, unless a re-key has started another attempt since. */
  private settle(
    r: OpenedRecord,
    attempt: Promise<OpenedRecord>,
    plaintext: Uint8Array | null,
  ): OpenedRecord {
    if (r.attempt === attempt) {
      r.plaintext = plaintext;
      r.settled = true;
    }
    return r;
  }

  /**
   * Delivers a record {@link open} decrypted, strictly in the order the records were opened: its
   * authentication, then flow control, reassembly and the record's meaning. A record taken again after
   * a key update ahead of it is delivered once its new decryption is done (a promise then). Throws what
   * makes it fatal.
   */
  deliver(r: OpenedRecord): ReliableEvent[] | Promise<ReliableEvent[]> {
    if (this.ahead.shift() !== r) throw fail('internal_error', 'records delivered out of order');
    if (!r.settled) return r.attempt.then(() => this.deliverSettled(r));
    return this.deliverSettled(r);
  }

  private deliverSettled(r: OpenedRecord): ReliableEvent[] {
    if (r.protection instanceof Error) throw r.protection;
    return this.deliverPlaintext(r.record, r.plaintext, r.protection);
  }

  /** A decrypted record in its turn (§5.1): its inner type and flags, then what the type says. */
  private deliverPlaintext(
    record: Uint8Array,
    inner: Uint8Array | null,
    protection: RecordProtection,
  ): ReliableEvent[] {
    if (!inner) {
      throw fail(
        'bad_record_mac',
        `record ${protection.seq} failed authentication (tampered, replayed or reordered)`,
      );
    }
    const type = inner[0]!;
    const flags = inner[1]!;
    const plaintext = inner.subarray(INNER_HEADER_LEN);
    if (type === RecordType.DATA) return this.reassemble(flags, plaintext);
    if (type !== RecordType.CONTROL && type !== RecordType.KEY_UPDATE) {
      throw fail('unexpected_message', `unexpected record type ${type} on the reliable channel`);
    }
    // Only DATA is flow-controlled (§5.5); other records are small by construction.
    if (record.length > MAX_CONTROL_RECORD_BYTES) {
      throw fail('record_overflow', `a type ${type} record of ${record.length} bytes`);
    }
    if (type === RecordType.CONTROL) {
      if (flags !== 0) throw fail('malformed', 'control records have no flags');
      return [{ type: 'control', message: decodeControl(plaintext) }];
    }
    if (flags !== 0 || plaintext.length !== 1 || plaintext[0]! > 1) throw fail('malformed', 'bad key update');
    // The peer's next record uses its next key (§4.5), and so do the records already here behind this one.
    this.keys.rotate();
    this.rekeyAhead();
    return [{ type: 'key-update', requestUpdate: plaintext[0] === 1 }];
  }

  /**
   * The records opened behind a KEY_UPDATE took the retired key: each takes, in order, its sequence
   * number under the next one and is decrypted again. What it decrypted to before is dropped unread.
   */
  private rekeyAhead(): void {
    for (const r of this.ahead) {
      r.protection = this.take();
      this.decrypt(r);
      // Awaited in its turn, unless a later key update replaces it first.
      r.attempt.catch(ignore);
    }
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
    const data = this.aead.allocate?.(p.total) ?? new Uint8Array(p.total);
    let at = 0;
    for (const c of p.chunks) {
      data.set(c, at);
      at += c.length;
    }
    return [{ type: 'message', data, cost: p.cost }];
  }
}

function ignore(): void {}
