/**
 * Mesh frames (PROTOCOL.md §12): the bytes of one TCP-mode message between two mesh members. Pure: no
 * I/O, no timers. Every decoder checks lengths exactly and throws a `malformed` P2PTLSError for anything
 * else, so a hostile peer can make a frame fail but never make it mean something it does not say.
 *
 * Header integers are big-endian (as in the rest of the protocol); tensor payloads are IEEE-754 binary32
 * little-endian, the byte order of every platform p2ptls runs on, so a chunk is copied, never converted
 * element by element (a big-endian host would still read and write it correctly, only slower).
 */
import { fail } from '../errors.js';
import { fromUtf8, utf8 } from '../util/bytes.js';

/** Version byte of every mesh frame. */
export const MESH_WIRE_VERSION = 1;

/** Frame types (second byte). */
export const FrameType = {
  /** Application bytes from `mesh.send` / `mesh.broadcast`. */
  DATA: 0x01,
  /** "I have started this operation; send me its chunks." Sent to the member that will send to us. */
  READY: 0x02,
  /** A slice of a tensor within one step of an operation. */
  CHUNK: 0x03,
  /** The operation failed on the sender: fail it too, with this code. */
  ABORT: 0x04,
} as const;

/** Collective kinds, agreed in READY. */
export const OpKind = {
  ALL_REDUCE: 1,
  BROADCAST: 2,
  BARRIER: 3,
} as const;
export type OpKind = (typeof OpKind)[keyof typeof OpKind];

/** Phases of a CHUNK. */
export const Phase = {
  REDUCE_SCATTER: 0,
  ALL_GATHER: 1,
  BROADCAST: 2,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export const DATA_HEADER_LEN = 2;
export const READY_LEN = 24;
export const CHUNK_HEADER_LEN = 24;
/** Longest ABORT reason kept (bytes); longer ones are cut by the sender and refused by the receiver. */
export const MAX_ABORT_REASON = 512;
const MAX_CODE_LEN = 64;

/** The parameters every member of an operation must agree on. */
export interface ReadyFrame {
  type: typeof FrameType.READY;
  kind: OpKind;
  /** Operation sequence number: the n-th collective call on this mesh. */
  seq: number;
  /** Fingerprint of the sorted member list the operation runs over. */
  group: number;
  /** Tensor length in elements. */
  length: number;
  /** Kind-specific: reduction (0 sum, 1 mean) for all-reduce, the root's rank for broadcast. */
  param: number;
}

export interface ChunkFrame {
  type: typeof FrameType.CHUNK;
  phase: Phase;
  seq: number;
  step: number;
  /** Element offset of the chunk within the tensor. */
  offset: number;
  /** Little-endian binary32 values: `count` × 4 bytes, a view into the received message. */
  payload: Uint8Array;
  count: number;
}

export interface AbortFrame {
  type: typeof FrameType.ABORT;
  seq: number;
  /** An error code (not trusted: the receiver maps unknown codes to `peer_error`). */
  code: string;
  reason: string;
}

export interface DataFrame {
  type: typeof FrameType.DATA;
  data: Uint8Array;
}

export type MeshFrame = DataFrame | ReadyFrame | ChunkFrame | AbortFrame;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function header(type: number, length: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(length);
  bytes[0] = MESH_WIRE_VERSION;
  bytes[1] = type;
  return { bytes, view: new DataView(bytes.buffer) };
}

export function encodeData(data: Uint8Array): Uint8Array {
  const { bytes } = header(FrameType.DATA, DATA_HEADER_LEN + data.length);
  bytes.set(data, DATA_HEADER_LEN);
  return bytes;
}

export function encodeReady(f: Omit<ReadyFrame, 'type'>): Uint8Array {
  const { bytes, view } = header(FrameType.READY, READY_LEN);
  bytes[2] = f.kind;
  view.setUint32(4, f.seq);
  view.setUint32(8, f.group);
  view.setUint32(12, f.length);
  view.setUint32(16, f.param);
  return bytes;
}

/** A CHUNK frame carrying `values` (copied, so the caller may change them afterwards). */
export function encodeChunk(
  f: { phase: Phase; seq: number; step: number; offset: number },
  values: Float32Array,
): Uint8Array {
  const { bytes, view } = header(FrameType.CHUNK, CHUNK_HEADER_LEN + values.length * 4);
  bytes[2] = f.phase;
  view.setUint32(4, f.seq);
  view.setUint32(8, f.step);
  view.setUint32(12, f.offset);
  view.setUint32(16, values.length);
  if (LITTLE_ENDIAN) {
    bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.length * 4), CHUNK_HEADER_LEN);
  } else {
    for (let i = 0; i < values.length; i++) view.setFloat32(CHUNK_HEADER_LEN + 4 * i, values[i]!, true);
  }
  return bytes;
}

export function encodeAbort(f: { seq: number; code: string; reason: string }): Uint8Array {
  const code = utf8(f.code).subarray(0, MAX_CODE_LEN);
  let reason = utf8(f.reason);
  if (reason.length > MAX_ABORT_REASON) reason = utf8(`${f.reason.slice(0, MAX_ABORT_REASON / 4)}…`);
  const { bytes, view } = header(FrameType.ABORT, 8 + 1 + code.length + reason.length);
  view.setUint32(4, f.seq);
  bytes[8] = code.length;
  bytes.set(code, 9);
  bytes.set(reason, 9 + code.length);
  return bytes;
}

/** Parses one mesh frame. Throws `malformed` (never anything else) for bytes that are not one. */
export function decodeFrame(bytes: Uint8Array): MeshFrame {
  if (bytes.length < 2) throw fail('malformed', `mesh frame of ${bytes.length} bytes`);
  if (bytes[0] !== MESH_WIRE_VERSION) throw fail('malformed', `mesh frame version ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = bytes[1];
  switch (type) {
    case FrameType.DATA:
      return { type, data: bytes.subarray(DATA_HEADER_LEN) };
    case FrameType.READY: {
      if (bytes.length !== READY_LEN) throw fail('malformed', `READY of ${bytes.length} bytes`);
      const kind = bytes[2]!;
      if (kind !== OpKind.ALL_REDUCE && kind !== OpKind.BROADCAST && kind !== OpKind.BARRIER) {
        throw fail('malformed', `READY with unknown operation kind ${kind}`);
      }
      if (bytes[3] !== 0 || view.getUint32(20) !== 0) throw fail('malformed', 'READY reserved bytes set');
      return {
        type,
        kind,
        seq: view.getUint32(4),
        group: view.getUint32(8),
        length: view.getUint32(12),
        param: view.getUint32(16),
      };
    }
    case FrameType.CHUNK: {
      if (bytes.length < CHUNK_HEADER_LEN) throw fail('malformed', `CHUNK of ${bytes.length} bytes`);
      const phase = bytes[2]!;
      if (phase !== Phase.REDUCE_SCATTER && phase !== Phase.ALL_GATHER && phase !== Phase.BROADCAST) {
        throw fail('malformed', `CHUNK with unknown phase ${phase}`);
      }
      if (bytes[3] !== 0 || view.getUint32(20) !== 0) throw fail('malformed', 'CHUNK reserved bytes set');
      const count = view.getUint32(16);
      if (bytes.length !== CHUNK_HEADER_LEN + 4 * count) {
        throw fail(
          'malformed',
          `CHUNK says ${count} elements but carries ${bytes.length - CHUNK_HEADER_LEN} bytes`,
        );
      }
      if (count === 0) throw fail('malformed', 'empty CHUNK');
      return {
        type,
        phase,
        seq: view.getUint32(4),
        step: view.getUint32(8),
        offset: view.getUint32(12),
        count,
        payload: bytes.subarray(CHUNK_HEADER_LEN),
      };
    }
    case FrameType.ABORT: {
      if (bytes.length < 9) throw fail('malformed', `ABORT of ${bytes.length} bytes`);
      const codeLen = bytes[8]!;
      if (codeLen > MAX_CODE_LEN || 9 + codeLen > bytes.length) throw fail('malformed', 'ABORT code length');
      if (bytes.length - 9 - codeLen > MAX_ABORT_REASON + 4) throw fail('malformed', 'ABORT reason too long');
      if (bytes[2] !== 0 || bytes[3] !== 0) throw fail('malformed', 'ABORT reserved bytes set');
      return {
        type,
        seq: view.getUint32(4),
        code: fromUtf8(bytes.subarray(9, 9 + codeLen)),
        reason: fromUtf8(bytes.subarray(9 + codeLen)),
      };
    }
    default:
      throw fail('malformed', `unknown mesh frame type ${type}`);
  }
}

/**
 * Applies `payload` (little-endian binary32) to `target` starting at `at`: adds (reduce) or copies.
 * Works whatever the payload's alignment within its message.
 */
export function applyChunk(target: Float32Array, at: number, payload: Uint8Array, add: boolean): void {
  const count = payload.length >>> 2;
  let values: Float32Array;
  if (LITTLE_ENDIAN) {
    values =
      payload.byteOffset % 4 === 0
        ? new Float32Array(payload.buffer, payload.byteOffset, count)
        : new Float32Array(payload.slice().buffer);
  } else {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = view.getFloat32(4 * i, true);
  }
  if (add) {
    for (let i = 0; i < count; i++) target[at + i]! += values[i]!;
  } else target.set(values, at);
}
