/**
 * The rows of bench:protocol, runtime-neutral so that bench:browser runs the same ones in Chromium: raw
 * AES-GCM seal+open of a message, and the same bytes through two in-memory sessions in TCP mode (send →
 * records → receive) or SLLP mode (sendDatagram → receiveDatagram), each pipelined with up to `window`
 * operations in flight.
 */
import type { Identity } from '../src/identity/index.js';
import type { AeadProvider, DatagramResult, Session, SessionEvent } from '../src/protocol/index.js';
import { recordNonce } from '../src/protocol/key-schedule.js';
import { connectInMemory } from '../src/testing/in-memory.js';

const MiB = 1024 * 1024;

/** Wall-clock ms, and CPU ms of the whole process over the same span (NaN where there is no such clock). */
export interface Timing {
  ms: number;
  cpuMs: number;
}

export class RecordRows {
  /** Operations in flight. */
  window = 32;

  /** `cpuMs`: the process's CPU time so far, in ms (thread pool included), where the runtime has one. */
  constructor(
    private readonly a: Identity,
    private readonly b: Identity,
    private readonly cpuMs: () => number = () => Number.NaN,
  ) {}

  async pipelined(count: number, op: (i: number) => Promise<unknown>): Promise<Timing> {
    const t0 = performance.now();
    const cpu0 = this.cpuMs();
    const inflight = new Set<Promise<unknown>>();
    for (let i = 0; i < count; i++) {
      const p = op(i).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= this.window) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    return { ms: performance.now() - t0, cpuMs: this.cpuMs() - cpu0 };
  }

  /** Seals and opens `msg` `count` times; with `chunk`, as a stream of `chunk`-byte seals (one per record). */
  async raw(aead: AeadProvider, msg: Uint8Array, count: number, chunk = msg.length): Promise<Timing> {
    const key = await aead.importKey(crypto.getRandomValues(new Uint8Array(32)));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const aad = new Uint8Array(2);
    const pieces: Uint8Array[] = [];
    for (let off = 0; off < msg.length; off += chunk) pieces.push(msg.subarray(off, off + chunk));
    let seq = 0;
    return this.pipelined(count * pieces.length, async (i) => {
      const piece = pieces[i % pieces.length]!;
      const nonce = recordNonce(iv, seq++);
      const ct = await aead.seal(key, nonce, aad, piece);
      const pt = await aead.open(key, nonce, aad, ct);
      if (!pt || pt.length !== piece.length) throw new Error('raw round trip failed');
    });
  }

  private async pair(aead: AeadProvider, recordSize?: number) {
    const psk = crypto.getRandomValues(new Uint8Array(32));
    // A window larger than a row's volume: flow control is measured by bench:transport, not here.
    const session = { aead, receiveWindow: 256 * MiB, ...(recordSize ? { recordSize } : {}) };
    const { initiator, responder } = await connectInMemory({
      initiator: this.a,
      responder: this.b,
      psk,
      session,
    });
    // Open the full receive window at once, as a connection does (§5.5).
    responder.session.announceWindow();
    while (responder.sentReliable.length === 0) await new Promise((r) => setTimeout(r, 0));
    await Promise.all(responder.sentReliable.splice(0).map((r) => initiator.session.receive(r)));
    return { tx: initiator.session, rx: responder.session, wire: initiator, back: responder };
  }

  /** TCP mode: one send per message (batch = 1) or `batch` messages per send call. */
  async tcp(aead: AeadProvider, msg: Uint8Array, count: number, batch: number, recordSize?: number) {
    const { tx, rx, wire, back } = await this.pair(aead, recordSize);
    let received = 0;
    const consume = (events: SessionEvent[]) => {
      for (const e of events) {
        if (e.type !== 'message') continue;
        received++;
        // The application consumed it: the credit goes back, and the WINDOW records it causes (§5.5).
        rx.release(e.cost);
      }
    };
    const calls = Math.ceil(count / batch);
    const msgs = Array.from({ length: batch }, () => msg);
    const t = await this.pipelined(calls, async () => {
      await tx.send(...msgs);
      // Each record goes to the receiver as it is sent (their decryptions overlap) and its events are
      // taken when its own promise resolves, in order, as a connection takes them (RecordIntake). This
      // loop used to collect them with Promise.all and flat(), and await a Promise.all of the (nearly
      // always empty) records going back: the benchmark's own work, charged to p2ptls's side. The two
      // loops side by side in one process, 16 KiB messages, ratio to raw AES-GCM over 20 alternating
      // pairs, three runs (2026-12-02): node:crypto 0.873, 0.885, 0.841 → 0.898, 0.912, 0.909; WebCrypto
      // 0.910, 0.911, 0.935 → 0.955, 0.944, 0.942. 1 MiB messages in 64 KiB records (node:crypto, 24
      // pairs): 0.826, 0.848, 0.941 → 0.832, 0.877, 0.915, the same within the spread.
      const sent = wire.sentReliable;
      let last: Promise<void> | undefined;
      for (const r of sent) last = rx.receive(r).then(consume);
      sent.length = 0;
      await last;
      const replies = back.sentReliable;
      if (replies.length === 0) return;
      let done: Promise<unknown> | undefined;
      for (const r of replies) done = tx.receive(r);
      replies.length = 0;
      await done;
    });
    if (received !== calls * batch) throw new Error(`lost messages: ${received}/${calls * batch}`);
    return { ...t, bytes: calls * batch * msg.length };
  }

  /**
   * Two sessions joined the way a data channel joins them: each output copies what it is handed (the
   * receiving session takes its copy within the call: WebCrypto copies its input before it returns) and
   * delivers it at once, so the sender may put records and datagrams together in a buffer of its own
   * (SessionOutput.copiesReliable, copiesDatagrams). What the receiver made of each comes out in order.
   */
  private async channel(aead: AeadProvider, copies = true, recordSize?: number) {
    const psk = crypto.getRandomValues(new Uint8Array(32));
    const sessions: { initiator?: Session; responder?: Session } = {};
    const delivered = {
      reliable: [] as Promise<SessionEvent[]>[],
      datagrams: [] as Promise<DatagramResult>[],
    };
    const output = (end: 'initiator' | 'responder') => {
      const to = () => sessions[end === 'initiator' ? 'responder' : 'initiator']!;
      // Only the initiator → responder direction is measured; WINDOW records going back are applied.
      const mine = end === 'initiator';
      return {
        reliable: (r: Uint8Array) => {
          const events = to().receive(r);
          if (mine) delivered.reliable.push(events);
          else events.catch(() => {});
        },
        datagram: (d: Uint8Array) => {
          delivered.datagrams.push(Promise.resolve(to().receiveDatagram(d)));
          return true;
        },
        copiesReliable: copies,
        copiesDatagrams: copies,
      };
    };
    const session = { aead, receiveWindow: 256 * MiB, ...(recordSize ? { recordSize } : {}) };
    const ends = await connectInMemory({ initiator: this.a, responder: this.b, psk, session, output });
    sessions.initiator = ends.initiator.session;
    sessions.responder = ends.responder.session;
    sessions.responder.announceWindow();
    const [tx, rx] = [sessions.initiator, sessions.responder];
    // The WINDOW just announced reaches the sender, and a first record and datagram each way the row
    // goes are sealed and opened alone: the receiver's first one waits for its key, and reads its copy
    // only then, from a buffer the sender must not have reused by that time.
    while (tx.sendCredit < 256 * MiB) await new Promise((r) => setTimeout(r, 0));
    await tx.send(new Uint8Array(1));
    for (const e of await delivered.reliable.shift()!) if (e.type === 'message') rx.release(e.cost);
    await tx.sendDatagram(new Uint8Array(1), Date.now());
    if (!(await delivered.datagrams.shift()!).ok) throw new Error('the first datagram was lost');
    return { tx, rx, delivered };
  }

  /** {@link tcp} (one message per send) through {@link channel}. */
  async tcpChannel(aead: AeadProvider, msg: Uint8Array, count: number, copies = true, recordSize?: number) {
    const { tx, rx, delivered } = await this.channel(aead, copies, recordSize);
    let received = 0;
    const t = await this.pipelined(count, async () => {
      await tx.send(msg);
      // A message longer than a record is several records, each with its own events.
      for (const events of delivered.reliable.splice(0)) {
        for (const e of await events) {
          if (e.type !== 'message') continue;
          received++;
          rx.release(e.cost);
        }
      }
    });
    if (received !== count) throw new Error(`lost messages: ${received}/${count}`);
    return { ...t, bytes: count * msg.length };
  }

  /** {@link sllp} through {@link channel}. */
  async sllpChannel(aead: AeadProvider, msg: Uint8Array, count: number, copies = true) {
    const { tx, delivered } = await this.channel(aead, copies);
    let received = 0;
    const t = await this.pipelined(count, async () => {
      await tx.sendDatagram(msg, Date.now());
      if ((await delivered.datagrams.shift()!).ok) received++;
    });
    if (received !== count) throw new Error(`lost datagrams: ${received}/${count}`);
    return { ...t, bytes: count * msg.length };
  }

  async sllp(aead: AeadProvider, msg: Uint8Array, count: number) {
    const { tx, rx, wire } = await this.pair(aead);
    let received = 0;
    const t = await this.pipelined(count, async () => {
      await tx.sendDatagram(msg, Date.now());
      const d = wire.sentDatagrams.shift()!;
      if ((await rx.receiveDatagram(d)).ok) received++;
    });
    if (received !== count) throw new Error(`lost datagrams: ${received}/${count}`);
    return { ...t, bytes: count * msg.length };
  }
}
