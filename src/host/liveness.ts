/**
 * Whether a connection's peer is still there: a heartbeat PING (PROTOCOL.md §5.4) every interval, whose
 * PONG measures the round trip; a `timeout` when nothing authenticated has arrived for too long or a
 * fragmented message stalls; and probes on demand ({@link Liveness.probe}). The connection owns what
 * happens then (its close); this owns only the clocks.
 */
import { fail, type P2PTLSError } from '../errors.js';
import type { PeerId } from '../identity/peer-id.js';
import type { ReassemblyProgress } from '../protocol/index.js';
import type { Log } from '../util/log.js';

/**
 * The default window of a probe is 8 round trips, within these bounds: at least a second, because a live
 * peer on a loaded machine must not fail it (a false alarm leaves a live mesh member out of an
 * operation), and at most 5 s, so that one slow pong does not make it a heartbeat.
 */
const PROBE_MIN_MS = 1_000;
const PROBE_MAX_MS = 5_000;

/**
 * A timer this late means our own event loop stalled (a long synchronous step, a garbage collection, a
 * frozen tab, a suspended machine). Our stall is not the peer's silence: while the loop did not run, the
 * peer's records waited unread in the transport, and a turn of the loop runs its timers before it reads.
 * So the clocks that judge the peer stop for as long as a timer is late. Without this, test/mesh's 8
 * members in one process under two busy loops stalled 19 s at the start of a 16 Mi allReduce, and every
 * connection then timed out at its next heartbeat ("nothing authenticated for 10000 ms").
 */
const STALL_MS = 100;

/** What {@link Liveness} needs of its connection. */
export interface LivenessHost {
  readonly peerId: PeerId;
  /**
   * Reliable records received and not yet processed. While there are any, the peer is evidently sending
   * and we are the slow side: the heartbeat waits for them to authenticate (or fail) before it judges the
   * peer silent. (Under a 4-peer soak on 2 cores the backlog reached seconds.)
   */
  recordsInProcess(): number;
  /** The fragmented message being received, if any. */
  reassembling(): ReassemblyProgress | undefined;
  /** Sends a PING with these 8 bytes. */
  sendPing(data: Uint8Array): Promise<void>;
  /** The peer is judged gone: the connection ends with `error` (a `timeout`). */
  timedOut(reason: string, error: P2PTLSError): void;
}

export interface LivenessOptions {
  intervalMs: number;
  timeoutMs: number;
  reassemblyTimeoutMs: number;
}

export class Liveness {
  /** When authenticated input last arrived: forged or early bytes never refresh it. */
  private lastReceived = Date.now();
  private rtt: number | undefined;
  /** Bytes of the message being reassembled at the last heartbeat, and since when. */
  private reassemblyMark = { received: -1, at: Date.now() };
  /** When the last heartbeat ran: the next one is due an interval later (see {@link STALL_MS}). */
  private lastBeat = Date.now();
  private readonly heartbeat: ReturnType<typeof setInterval>;
  /** A probe in progress: settled by the first authenticated input, or by its timer at `deadline`. */
  private probing:
    | {
        done: Promise<boolean>;
        settle: (heard: boolean) => void;
        timer: ReturnType<typeof setTimeout>;
        deadline: number;
      }
    | undefined;

  constructor(
    private readonly host: LivenessHost,
    private readonly options: LivenessOptions,
    private readonly log: Log,
  ) {
    this.heartbeat = setInterval(() => this.beat(), options.intervalMs);
  }

  /** The last heartbeat round-trip time (ms), once one was measured. */
  get rttMs(): number | undefined {
    return this.rtt;
  }

  /** Something authenticated came from the peer. */
  heard(): void {
    this.lastReceived = Date.now();
    if (this.probing) this.probeSettled(true);
  }

  /** Sends a PING now carrying our clock, which its PONG brings back. */
  ping(): Promise<void> {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat64(0, performance.now());
    return this.host.sendPing(data);
  }

  /** The peer's PONG to one of our PINGs: the round-trip time it measures (ms). */
  pong(data: Uint8Array): number {
    const sent = new DataView(data.buffer, data.byteOffset, 8).getFloat64(0);
    this.rtt = performance.now() - sent;
    return this.rtt;
  }

  /**
   * Pings now, and judges the peer gone (as a heartbeat timeout does) if nothing authenticated arrives
   * within `withinMs`. Resolves true once the peer is heard from, false if {@link stop} comes first. The
   * default window is 8 round trips within {@link PROBE_MIN_MS}..{@link PROBE_MAX_MS}, and at most half
   * the heartbeat timeout; records still being processed count as being heard.
   */
  probe(withinMs?: number): Promise<boolean> {
    if (!this.probing) {
      const window =
        withinMs ??
        Math.min(this.options.timeoutMs / 2, PROBE_MAX_MS, Math.max(PROBE_MIN_MS, 8 * (this.rtt ?? 0)));
      let settle!: (heard: boolean) => void;
      const done = new Promise<boolean>((resolve) => {
        settle = resolve;
      });
      this.probing = {
        done,
        settle,
        timer: setTimeout(() => this.probeExpired(window), window),
        deadline: Date.now() + window,
      };
      this.log('probing: the peer has %d ms to answer', window);
      this.ping().catch(() => {});
    }
    return this.probing.done;
  }

  /** No more heartbeats (our CLOSE is out: the close's own deadline bounds the wait from now on). */
  stopHeartbeat(): void {
    clearInterval(this.heartbeat);
  }

  /** The connection closed: no more heartbeats, and a probe in progress resolves false. */
  stop(): void {
    this.stopHeartbeat();
    this.probeSettled(false);
  }

  private probeSettled(heard: boolean): void {
    const probe = this.probing;
    if (!probe) return;
    this.probing = undefined;
    clearTimeout(probe.timer);
    probe.settle(heard);
  }

  private probeExpired(window: number): void {
    const probe = this.probing;
    if (!probe) return;
    // Our loop stalled during the window: the peer gets the time we were not listening once more, from
    // now. The new deadline is when the new timer is due, so only a new stall extends it again. (It was
    // the old deadline plus the stall, a stall's length before the timer: every expiry then read as
    // "late" by that much and extended once more. In test/mesh/elastic.test.ts one probe of a SIGKILLed
    // member's connection re-extended by ~510 ms for 17 s, until ICE gave up, and the member stayed in
    // the mesh past the test's 15 s.)
    const now = Date.now();
    const late = now - probe.deadline;
    if (late > STALL_MS) {
      this.log('probe: our event loop stalled %d ms; listening that much longer', late);
      probe.deadline = now + late;
      probe.timer = setTimeout(() => this.probeExpired(window), late);
      return;
    }
    if (this.host.recordsInProcess() > 0) this.probeSettled(true);
    else {
      this.host.timedOut(
        'probe timeout',
        fail('timeout', `${this.host.peerId} did not answer a probe within ${window} ms`),
      );
    }
  }

  private beat(): void {
    const now = Date.now();
    const { intervalMs, timeoutMs, reassemblyTimeoutMs } = this.options;
    const late = now - this.lastBeat - intervalMs;
    this.lastBeat = now;
    if (late > STALL_MS) {
      this.log('heartbeat: our event loop stalled %d ms, which is not silence of the peer', late);
      this.lastReceived = Math.min(now, this.lastReceived + late);
      this.reassemblyMark.at = Math.min(now, this.reassemblyMark.at + late);
    }
    if (now - this.lastReceived > timeoutMs && this.host.recordsInProcess() === 0) {
      this.host.timedOut(
        'heartbeat timeout',
        fail('timeout', `nothing authenticated from ${this.host.peerId} for ${timeoutMs} ms`),
      );
      return;
    }
    const progress = this.host.reassembling();
    if (!progress || progress.received !== this.reassemblyMark.received) {
      this.reassemblyMark = { received: progress?.received ?? -1, at: now };
    } else if (now - this.reassemblyMark.at > reassemblyTimeoutMs) {
      this.host.timedOut(
        'message stalled',
        fail(
          'timeout',
          `a ${progress.total}-byte message stalled at ${progress.received} bytes for ${reassemblyTimeoutMs} ms`,
        ),
      );
      return;
    }
    this.ping().catch(() => {});
  }
}
