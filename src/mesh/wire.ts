/**
 * Mesh frames (PROTOCOL.md §12): the bytes of one TCP-mode message between two mesh members. Pure: no
 * I/O, no timers. Every decoder checks lengths exactly and throws a `malformed` P2PTLSError for anything
 * else, so a hostile peer can make a frame fail but never make it mean something it does not say.
 *
 * Header integers are big-endian (as in the rest of the protocol); tensor payloads are little-endian in
 * one of the encodings of codec.ts — for binary32 the byte order of every platform p2ptls runs on, so a
 * float32 chunk is copied, never converted element by element.
 */
import { fail } from '../errors.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { fromUtf8, utf8 } from '../util/bytes.js';
import { type Codec, decodeInto, encodedLength, encodeInto, isCodec } from './codec.js';

/**
 * Version byte of every mesh frame. 2: READY carries the mode (elastic, encoding) and the attempt's
 * view, CHUNK its encoding and view; LOST and RESULT frames (elastic operations).
 */
export const MESH_WIRE_VERSION = 2;

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
  /** Elastic operations: this member is out of the operation; go on without it. */
  LOST: 0x05,
  /** Elastic operations: the sender completed the operation already; its result follows in chunks. */
  RESULT: 0x06,
} as const;

/** READY byte 3: the operation's mode. */
export const ReadyFlags = {
  /** Bits 0–1: the {@link Codec} of the operation's chunks. */
  CODEC_MASK: 0x03,
  /** The operation is elastic (goes on without lost members). */
  ELASTIC: 0x80,
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
  /** A completed operation's result, sent to a member that is still at it (after a RESULT frame). */
  RESULT: 3,
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
  /** The encoding of the operation's reduce-scatter and all-gather chunks. */
  codec: Codec;
  elastic: boolean;
  /** Fingerprint of the members this attempt runs over (`group` minus the members lost so far). */
  view: number;
}

export interface ChunkFrame {
  type: typeof FrameType.CHUNK;
  phase: Phase;
  codec: Codec;
  seq: number;
  step: number;
  /** Element offset of the chunk within the tensor. */
  offset: number;
  count: number;
  /** The attempt (READY's `view`) the chunk belongs to. */
  view: number;
  /** `count` values in `codec`: a view into the received message. */
  payload: Uint8Array;
}

export interface LostFrame {
  type: typeof FrameType.LOST;
  seq: number;
  /** The member the operation goes on without. */
  peerId: PeerId;
}

export interface ResultFrame {
  type: typeof FrameType.RESULT;
  seq: number;
  /** The receiver's attempt (its READY's `view`), which the result replaces. */
  view: number;
  length: number;
  /** The members whose tensors the result is made of, in ring order. */
  contributors: PeerId[];
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

export type MeshFrame = DataFrame | ReadyFrame | ChunkFrame | AbortFrame | LostFrame | ResultFrame;

/** Most contributors a RESULT may list. */
export const MAX_CONTRIBUTORS = 1024;

/** A frame of `length` bytes, its version and type written: at the start of `into` when it fits, else new. */
function header(type: number, length: number, into?: Uint8Array): { bytes: Uint8Array; view: DataView } {
  const bytes = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
  bytes[0] = MESH_WIRE_VERSION;
  bytes[1] = type;
  return { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

export function encodeData(data: Uint8Array): Uint8Array {
  const { bytes } = header(FrameType.DATA, DATA_HEADER_LEN + data.length);
  bytes.set(data, DATA_HEADER_LEN);
  return bytes;
}

export function encodeReady(f: Omit<ReadyFrame, 'type'>): Uint8Array {
  const { bytes, view } = header(FrameType.READY, READY_LEN);
  bytes[2] = f.kind;
  bytes[3] = f.codec | (f.elastic ? ReadyFlags.ELASTIC : 0);
  view.setUint32(4, f.seq);
  view.setUint32(8, f.group);
  view.setUint32(12, f.length);
  view.setUint32(16, f.param);
  view.setUint32(20, f.view);
  return bytes;
}

interface ChunkHeader {
  phase: Phase;
  codec: Codec;
  seq: number;
  step: number;
  offset: number;
  view: number;
}

/**
 * A CHUNK frame carrying `values` encoded with `f.codec` (copied: the caller may change them after).
 * Written into `into` when it is long enough (every byte of the frame is written).
 */
export function encodeChunk(f: ChunkHeader, values: Float32Array, into?: Uint8Array): Uint8Array {
  const length = CHUNK_HEADER_LEN + encodedLength(f.codec, values.length);
  const { bytes, view } = header(FrameType.CHUNK, length, into);
  writeChunkHeader(bytes, view, f, values.length);
  return encodeInto(f.codec, values, bytes, CHUNK_HEADER_LEN);
}

/** A CHUNK frame carrying an already encoded payload of `count` elements (forwarded unchanged). */
export function encodeChunkPayload(
  f: ChunkHeader,
  count: number,
  payload: Uint8Array,
  into?: Uint8Array,
): Uint8Array {
  const { bytes, view } = header(FrameType.CHUNK, CHUNK_HEADER_LEN + payload.length, into);
  writeChunkHeader(bytes, view, f, count);
  bytes.set(payload, CHUNK_HEADER_LEN);
  return bytes;
}

function writeChunkHeader(bytes: Uint8Array, view: DataView, f: ChunkHeader, count: number): void {
  bytes[2] = f.phase;
  bytes[3] = f.codec;
  view.setUint32(4, f.seq);
  view.setUint32(8, f.step);
  view.setUint32(12, f.offset);
  view.setUint32(16, count);
  view.setUint32(20, f.view);
}

export function encodeLost(f: { seq: number; peerId: PeerId }): Uint8Array {
  const id = utf8(f.peerId);
  const { bytes, view } = header(FrameType.LOST, 8 + id.length);
  view.setUint32(4, f.seq);
  bytes.set(id, 8);
  return bytes;
}

export function encodeResult(f: Omit<ResultFrame, 'type'>): Uint8Array {
  const ids = f.contributors.map((p) => utf8(p));
  const { bytes, view } = header(FrameType.RESULT, 18 + ids.reduce((a, b) => a + 1 + b.length, 0));
  view.setUint32(4, f.seq);
  view.setUint32(8, f.view);
  view.setUint32(12, f.length);
  view.setUint16(16, ids.length);
  let p = 18;
  for (const id of ids) {
    bytes[p++] = id.length;
    bytes.set(id, p);
    p += id.length;
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
      const flags = bytes[3]!;
      const codec = flags & ReadyFlags.CODEC_MASK;
      if ((flags & ~(ReadyFlags.CODEC_MASK | ReadyFlags.ELASTIC)) !== 0 || !isCodec(codec)) {
        throw fail('malformed', `READY with unknown mode 0x${flags.toString(16)}`);
      }
      return {
        type,
        kind,
        seq: view.getUint32(4),
        group: view.getUint32(8),
        length: view.getUint32(12),
        param: view.getUint32(16),
        codec,
        elastic: (flags & ReadyFlags.ELASTIC) !== 0,
        view: view.getUint32(20),
      };
    }
    case FrameType.CHUNK: {
      if (bytes.length < CHUNK_HEADER_LEN) throw fail('malformed', `CHUNK of ${bytes.length} bytes`);
      const phase = bytes[2]!;
      if (phase > Phase.RESULT) throw fail('malformed', `CHUNK with unknown phase ${phase}`);
      const codec = bytes[3]!;
      if (!isCodec(codec)) throw fail('malformed', `CHUNK with unknown encoding ${codec}`);
      const count = view.getUint32(16);
      if (bytes.length !== CHUNK_HEADER_LEN + encodedLength(codec, count)) {
        throw fail(
          'malformed',
          `CHUNK says ${count} elements but carries ${bytes.length - CHUNK_HEADER_LEN} bytes`,
        );
      }
      if (count === 0) throw fail('malformed', 'empty CHUNK');
      return {
        type,
        phase: phase as Phase,
        codec,
        seq: view.getUint32(4),
        step: view.getUint32(8),
        offset: view.getUint32(12),
        count,
        view: view.getUint32(20),
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
    case FrameType.LOST: {
      if (bytes.length < 8 || bytes[2] !== 0 || bytes[3] !== 0) throw fail('malformed', 'LOST header');
      const peerId = fromUtf8(bytes.subarray(8));
      if (!isPeerId(peerId)) throw fail('malformed', 'LOST without a peerId');
      return { type, seq: view.getUint32(4), peerId };
    }
    case FrameType.RESULT: {
      if (bytes.length < 18 || bytes[2] !== 0 || bytes[3] !== 0) throw fail('malformed', 'RESULT header');
      const n = view.getUint16(16);
      if (n === 0 || n > MAX_CONTRIBUTORS) throw fail('malformed', `RESULT with ${n} contributors`);
      const contributors: PeerId[] = [];
      let p = 18;
      for (let i = 0; i < n; i++) {
        const len = bytes[p++];
        if (len === undefined || p + len > bytes.length) throw fail('malformed', 'RESULT contributor list');
        const id = fromUtf8(bytes.subarray(p, p + len));
        if (!isPeerId(id)) throw fail('malformed', 'RESULT contributor is not a peerId');
        contributors.push(id);
        p += len;
      }
      if (p !== bytes.length) throw fail('malformed', 'RESULT has trailing bytes');
      return {
        type,
        seq: view.getUint32(4),
        view: view.getUint32(8),
        length: view.getUint32(12),
        contributors,
      };
    }
    default:
      throw fail('malformed', `unknown mesh frame type ${type}`);
  }
}

/** Applies a CHUNK's values to `target` at its offset: adds them (reduce) or copies them. */
export function applyChunk(target: Float32Array, f: ChunkFrame, add: boolean): void {
  decodeInto(f.codec, f.payload, f.count, target, f.offset, add);
}
