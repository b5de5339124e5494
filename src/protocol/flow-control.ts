/**
 * Receiver flow control of the reliable channel (PROTOCOL.md §5.5), as pure accounting: no timers, no
 * I/O. Credit is counted in bytes of DATA record plaintext plus {@link MESSAGE_COST_OVERHEAD} for every
 * message that starts in the record. A record that starts a message needs credit; the rest of a message
 * whose start was admitted always may follow, so a message larger than the window cannot deadlock and the
 * receiver holds at most its window plus one message.
 */
import { fail } from '../errors.js';
import { INITIAL_WINDOW, MESSAGE_COST_OVERHEAD } from './constants.js';

/** Credit of one DATA record (§5.5). */
export function recordCost(plaintextLength: number, messagesStarting: number): number {
  return plaintextLength + MESSAGE_COST_OVERHEAD * messagesStarting;
}

/** The sending side: how much more the peer lets us start (its last WINDOW minus what we sent). */
export class SendWindow {
  private limit = INITIAL_WINDOW;
  private used = 0;

  /** Credit left; may be negative after a message that started within the limit ran past it. */
  get available(): number {
    return this.limit - this.used;
  }

  /** Whether a record that starts a message and costs `cost` may be sent now. */
  admits(cost: number): boolean {
    return this.used + cost <= this.limit;
  }

  spend(cost: number): void {
    this.used += cost;
  }

  /** Applies the peer's WINDOW. A limit never shrinks: a smaller one is a protocol violation. */
  raise(maxData: number): void {
    if (maxData < this.limit) {
      throw fail('flow_control', `the peer lowered its window from ${this.limit} to ${maxData}`);
    }
    this.limit = maxData;
  }
}

/** The receiving side: what we told the peer it may send, and what the application has consumed. */
export class ReceiveWindow {
  private advertised = INITIAL_WINDOW;
  private received = 0;
  private released = 0;

  constructor(private readonly window: number) {
    if (!Number.isSafeInteger(window) || window < INITIAL_WINDOW) {
      throw fail('invalid_argument', `receiveWindow must be an integer ≥ ${INITIAL_WINDOW}`);
    }
  }

  /** Credit received and not yet consumed by the application (bytes buffered or still being reassembled). */
  get buffered(): number {
    return this.received - this.released;
  }

  /** Counts an arriving DATA record; a record that starts a message beyond the limit is fatal. */
  accept(cost: number, startsMessage: boolean): void {
    if (startsMessage && this.received + cost > this.advertised) {
      throw fail(
        'flow_control',
        `the peer started a message beyond our window (${this.received + cost} > ${this.advertised} bytes)`,
      );
    }
    this.received += cost;
  }

  /**
   * The application consumed `cost` bytes of credit. Returns the new limit to send in a WINDOW when it
   * grew by at least a quarter of the window since the last one (one small record per quarter window
   * keeps a full-speed sender from ever waiting on it), else undefined.
   */
  release(cost: number): number | undefined {
    this.released += cost;
    const limit = this.released + this.window;
    if (limit - this.advertised < this.window / 4) return undefined;
    this.advertised = limit;
    return limit;
  }

  /**
   * The limit to send in a WINDOW now, whether or not it grew: the one right after the handshake (§5.5),
   * which is also what lets the initiator's records follow InitiatorAuth (§8 step 4), so it is sent
   * even when the window is no larger than the initial one.
   */
  announce(): number {
    this.advertised = Math.max(this.advertised, this.released + this.window);
    return this.advertised;
  }
}
