/** Control messages carried in CONTROL records on either channel (PROTOCOL.md §5.4). */
import { fail } from '../errors.js';
import { ByteReader, ByteWriter, fromUtf8, utf8 } from '../util/bytes.js';
import { ControlType, MAX_CLOSE_REASON_BYTES, PING_PAYLOAD_LEN } from './constants.js';

export type ControlMessage =
  | { type: 'close'; code: number; reason: string }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  /** §5.5: the sender of this record lets the peer send DATA records up to `maxData` credit in total. */
  | { type: 'window'; maxData: number }
  /** §5.3: the sender has processed the peer's CLOSE; nothing follows it. */
  | { type: 'close-ack' };

/** Truncates a close reason to its byte limit without splitting a UTF-8 sequence. */
function reasonBytes(reason: string): Uint8Array {
  const b = utf8(reason);
  if (b.length <= MAX_CLOSE_REASON_BYTES) return b;
  let end = MAX_CLOSE_REASON_BYTES;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

export function encodeControl(m: ControlMessage): Uint8Array {
  const w = new ByteWriter(16);
  switch (m.type) {
    case 'close':
      if (!Number.isInteger(m.code) || m.code < 0 || m.code > 0xffff) {
        throw fail('invalid_argument', 'close code must be 0..65535');
      }
      return w.u8(ControlType.CLOSE).u16(m.code).bytes(reasonBytes(m.reason)).finish();
    case 'ping':
    case 'pong':
      if (m.data.length !== PING_PAYLOAD_LEN) throw fail('invalid_argument', 'ping payload must be 8 bytes');
      return w
        .u8(m.type === 'ping' ? ControlType.PING : ControlType.PONG)
        .bytes(m.data)
        .finish();
    case 'window':
      if (!Number.isSafeInteger(m.maxData) || m.maxData < 0) {
        throw fail('invalid_argument', 'window must be a non-negative safe integer');
      }
      return w.u8(ControlType.WINDOW).u64(BigInt(m.maxData)).finish();
    case 'close-ack':
      return w.u8(ControlType.CLOSE_ACK).finish();
  }
}

export function decodeControl(plaintext: Uint8Array): ControlMessage {
  const r = new ByteReader(plaintext, 'control message');
  const type = r.u8();
  let m: ControlMessage;
  if (type === ControlType.CLOSE) {
    const code = r.u16();
    const raw = r.rest();
    if (raw.length > MAX_CLOSE_REASON_BYTES) throw fail('malformed', 'close reason too long');
    m = { type: 'close', code, reason: fromUtf8(raw) };
  } else if (type === ControlType.PING || type === ControlType.PONG) {
    m = { type: type === ControlType.PING ? 'ping' : 'pong', data: r.bytes(PING_PAYLOAD_LEN).slice() };
  } else if (type === ControlType.WINDOW) {
    const maxData = r.u64();
    if (maxData > BigInt(Number.MAX_SAFE_INTEGER)) throw fail('malformed', 'window above 2^53 - 1');
    m = { type: 'window', maxData: Number(maxData) };
  } else if (type === ControlType.CLOSE_ACK) {
    m = { type: 'close-ack' };
  } else {
    throw fail('unexpected_message', `unknown control message type ${type}`);
  }
  r.end();
  return m;
}
