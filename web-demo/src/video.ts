/**
 * Video frames over SLLP mode. A frame (one JPEG or WebP image) is split across datagrams, each with
 *
 *   0x56 'V' ‖ u16 stream ‖ u32 frame ‖ u16 index ‖ u16 count ‖ f64 captureMs ‖ bytes
 *
 * (big-endian). The receiver shows a frame only when all its pieces arrived and it is newer than the one
 * on screen: a late frame is worse than none in live video, so nothing is retransmitted or waited for.
 * `stream` changes whenever the sender (re)starts its camera, so frame numbers can start over.
 */
import { fail } from '../../src/errors.js';

export const VIDEO_MAGIC = 0x56;
export const VIDEO_HEADER_BYTES = 19;
/** Pieces per frame: at 16 KB each this is 16 MB, far beyond any sane 640×480 frame. */
export const MAX_PIECES = 1024;
/** Partial frames kept at once; older ones are given up when newer ones start arriving. */
const MAX_PARTIAL = 8;

export interface Frame {
  readonly stream: number;
  readonly id: number;
  readonly captureMs: number;
  readonly data: Uint8Array;
  /** Datagrams the frame arrived in. */
  readonly pieces: number;
}

/** Splits frames into datagrams of at most `datagramBytes` (header included). */
export class FrameSplitter {
  private next = 0;
  readonly stream: number;

  constructor(private readonly datagramBytes: number) {
    if (datagramBytes <= VIDEO_HEADER_BYTES)
      throw fail('invalid_argument', 'datagram size too small for video');
    this.stream = crypto.getRandomValues(new Uint16Array(1))[0] ?? 0;
  }

  split(image: Uint8Array, captureMs: number): Uint8Array[] {
    const room = this.datagramBytes - VIDEO_HEADER_BYTES;
    const count = Math.max(1, Math.ceil(image.length / room));
    if (count > MAX_PIECES)
      throw fail('message_too_large', `frame of ${image.length} bytes needs ${count} pieces`);
    const id = this.next;
    this.next = (this.next + 1) >>> 0;
    const out: Uint8Array[] = [];
    for (let index = 0; index < count; index++) {
      const piece = image.subarray(index * room, (index + 1) * room);
      const d = new Uint8Array(VIDEO_HEADER_BYTES + piece.length);
      const v = new DataView(d.buffer);
      d[0] = VIDEO_MAGIC;
      v.setUint16(1, this.stream);
      v.setUint32(3, id);
      v.setUint16(7, index);
      v.setUint16(9, count);
      v.setFloat64(11, captureMs);
      d.set(piece, VIDEO_HEADER_BYTES);
      out.push(d);
    }
    return out;
  }
}

/** Counters of a {@link FrameAssembler}; `piecesLost` counts the pieces of frames that never completed. */
export interface AssemblerStats {
  framesCompleted: number;
  framesLate: number;
  framesIncomplete: number;
  piecesReceived: number;
  piecesLost: number;
  bytesReceived: number;
}

interface Partial {
  readonly count: number;
  readonly captureMs: number;
  readonly pieces: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
}

/** Reassembles frames from datagrams: complete and newer → shown; late or incomplete → counted, dropped. */
export class FrameAssembler {
  private stream: number | undefined;
  private shown = -1;
  private readonly partial = new Map<number, Partial>();
  readonly stats: AssemblerStats = {
    framesCompleted: 0,
    framesLate: 0,
    framesIncomplete: 0,
    piecesReceived: 0,
    piecesLost: 0,
    bytesReceived: 0,
  };

  /** Takes one datagram; returns a frame when this piece completed one. Throws `malformed` on garbage. */
  accept(datagram: Uint8Array): Frame | undefined {
    if (datagram.length < VIDEO_HEADER_BYTES || datagram[0] !== VIDEO_MAGIC) {
      throw fail('malformed', 'not a video datagram');
    }
    const v = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    const stream = v.getUint16(1);
    const id = v.getUint32(3);
    const index = v.getUint16(7);
    const count = v.getUint16(9);
    const captureMs = v.getFloat64(11);
    if (count === 0 || count > MAX_PIECES || index >= count) {
      throw fail('malformed', `video piece ${index} of ${count}`);
    }
    if (!Number.isFinite(captureMs)) throw fail('malformed', 'video capture time is not a number');
    if (stream !== this.stream) this.restart(stream);
    this.stats.piecesReceived++;
    this.stats.bytesReceived += datagram.length;
    if (id <= this.shown) {
      this.stats.framesLate++;
      return undefined;
    }
    let p = this.partial.get(id);
    if (!p) {
      p = { count, captureMs, pieces: new Array(count), received: 0, bytes: 0 };
      this.partial.set(id, p);
      if (this.partial.size > MAX_PARTIAL) this.giveUp((key) => key === Math.min(...this.partial.keys()));
    } else if (p.count !== count || p.captureMs !== captureMs) {
      throw fail('malformed', `video frame ${id}: pieces disagree on its size or time`);
    }
    if (p.pieces[index]) return undefined;
    const piece = datagram.slice(VIDEO_HEADER_BYTES);
    p.pieces[index] = piece;
    p.received++;
    p.bytes += piece.length;
    if (p.received < p.count) return undefined;

    this.partial.delete(id);
    this.shown = id;
    this.giveUp((key) => key < id);
    this.stats.framesCompleted++;
    const data = new Uint8Array(p.bytes);
    let at = 0;
    for (const piece of p.pieces as Uint8Array[]) {
      data.set(piece, at);
      at += piece.length;
    }
    return { stream, id, captureMs, data, pieces: p.count };
  }

  private restart(stream: number): void {
    this.giveUp(() => true);
    this.stream = stream;
    this.shown = -1;
  }

  private giveUp(which: (id: number) => boolean): void {
    for (const [id, p] of this.partial) {
      if (!which(id)) continue;
      this.partial.delete(id);
      this.stats.framesIncomplete++;
      this.stats.piecesLost += p.count - p.received;
    }
  }
}
