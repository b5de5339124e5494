/**
 * The baseline of bench:mesh: the same ring all-reduce as src/mesh/collective.ts — same ring, same
 * segments, same chunks, reduce-scatter then all-gather, each chunk reduced and forwarded the moment it
 * arrives — over raw WebRTC data channels: no p2ptls framing, encryption or handshake, no mesh frame
 * headers (a reliable ordered channel delivers the chunks in the order the receiver expects them), and
 * the send flow control of bench:transport's raw baseline (bufferedAmount under 1 MiB).
 */
import { mod, segment } from '../src/mesh/ring.js';
import { PeerLink } from '../src/transport/peer-link.js';
import { loopbackOnly, type RtcImplementation } from '../src/transport/rtc.js';

const HIGH_WATER = 1024 * 1024;

interface RawMember {
  /** Link to the next member (we send), and from the previous one (we receive). */
  next: PeerLink;
  prev: PeerLink;
}

export interface RawRing {
  /** One all-reduce (sum) of `tensors[i]` on member i, in place; resolves when every member is done. */
  allReduce(tensors: Float32Array[]): Promise<void>;
  close(): void;
}

/** Opens N raw links, member i → member i+1, and resolves once all are open. */
export async function openRawRing(
  rtc: RtcImplementation,
  n: number,
  chunkElements: number,
): Promise<RawRing> {
  const pairs = Array.from({ length: n }, () => {
    const a = new PeerLink({ rtc, initiator: true, candidateFilter: loopbackOnly });
    const b = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
    a.on('signal', (s) => b.signal(s));
    b.on('signal', (s) => a.signal(s));
    return { a, b };
  });
  await Promise.all(pairs.flatMap(({ a, b }) => [a, b].map((l) => new Promise((r) => l.once('open', r)))));
  const members: RawMember[] = pairs.map((p, i) => ({ next: p.a, prev: pairs[mod(i - 1, n)]!.b }));
  return {
    allReduce: (tensors) =>
      Promise.all(members.map((m, r) => runMember(m, r, n, tensors[r]!, chunkElements))).then(() => {}),
    close() {
      for (const { a, b } of pairs) {
        a.close();
        b.close();
      }
    },
  };
}

async function runMember(
  m: RawMember,
  rank: number,
  n: number,
  tensor: Float32Array,
  chunk: number,
): Promise<void> {
  const len = tensor.length;
  // What arrives, in order: reduce-scatter then all-gather segments, each cut in chunks.
  const expects: { reduce: boolean; step: number; start: number; end: number }[] = [];
  for (const reduce of [true, false]) {
    for (let step = 0; step < n - 1; step++) {
      const k = reduce ? mod(rank - 1 - step, n) : mod(rank - step, n);
      const { start, end } = segment(k, len, n);
      for (let o = start; o < end; o += chunk)
        expects.push({ reduce, step, start: o, end: Math.min(end, o + chunk) });
    }
  }
  const sendQueue: { start: number; end: number }[] = [];
  const own = segment(rank, len, n);
  for (let o = own.start; o < own.end; o += chunk)
    sendQueue.push({ start: o, end: Math.min(own.end, o + chunk) });
  let pumping: Promise<void> | undefined;
  const pump = () => {
    if (pumping) return;
    pumping = drain().then(() => {
      pumping = undefined;
      if (sendQueue.length > 0) pump();
    });
  };
  const drain = async () => {
    while (sendQueue.length > 0) {
      while (m.next.bufferedAmount >= HIGH_WATER) {
        await Promise.race([
          new Promise((r) => m.next.once('drain', r)),
          new Promise((r) => setTimeout(r, 5)),
        ]);
        m.next.settle();
      }
      const s = sendQueue.shift()!;
      // Copied out of the tensor at send time, as the mesh does: the value forwarded is the one reduced so far.
      m.next.sendReliable(new Uint8Array(tensor.slice(s.start, s.end).buffer));
    }
  };
  let index = 0;
  const last = n - 2;
  await new Promise<void>((resolve) => {
    if (expects.length === 0) resolve();
    const off = m.prev.on('reliable', (bytes) => {
      const e = expects[index++]!;
      const values =
        bytes.byteOffset % 4 === 0
          ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
          : new Float32Array(bytes.slice().buffer);
      if (e.reduce) for (let i = 0; i < values.length; i++) tensor[e.start + i]! += values[i]!;
      else tensor.set(values, e.start);
      if (e.reduce || e.step < last) sendQueue.push({ start: e.start, end: e.end });
      pump();
      if (index === expects.length) {
        off();
        resolve();
      }
    });
    pump();
  });
  while (pumping) await pumping;
}
