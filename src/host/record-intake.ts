/**
 * Received reliable records on their way into a connection's session: a few decrypt at once, the rest
 * wait their turn undecrypted, in arrival order. Counts what is still in process, which the heartbeat
 * reads as "the peer is sending", and tells when everything received so far has been processed.
 */
import type { Session, SessionEvent } from '../protocol/index.js';

/**
 * Received reliable records decrypting at once; later ones wait here, undecrypted. An asynchronous AEAD
 * (WebCrypto) runs its calls in arrival order on a thread pool, so a datagram's decryption queued behind
 * a whole window of bulk records; with four, it waits for four at most (issue #14: 1 fps of SLLP video
 * next to an unpaced transfer in bench:browser). Four keep the pool busy: Node's has four threads.
 */
const MAX_RECORDS_DECRYPTING = 4;

/** What a {@link RecordIntake} needs of the session. */
export type IntakeSession = Pick<Session, 'receive' | 'received'>;

/** Where processed records go. */
export interface IntakeOutput {
  /** A record was authenticated: what the session made of it, in order. */
  processed(events: SessionEvent[]): void;
  /** The session refused a record (it already sent its alert). */
  refused(error: unknown): void;
}

export class RecordIntake {
  /** Records passed in and not yet processed, waiting or decrypting. */
  private inProcess = 0;
  /** Records with the session now ({@link MAX_RECORDS_DECRYPTING} at most). */
  private decrypting = 0;
  /** Records waiting for a decryption slot, in arrival order. */
  private readonly undecrypted: Uint8Array[] = [];
  /** Called once {@link undecrypted} is empty (everything received is with the session). */
  private readonly undecryptedDrained: (() => void)[] = [];

  constructor(
    private readonly session: IntakeSession,
    private readonly output: IntakeOutput,
  ) {}

  /** Records received and not yet processed (waiting or decrypting). */
  get pending(): number {
    return this.inProcess;
  }

  /** A record from the link. */
  push(record: Uint8Array): void {
    this.inProcess++;
    if (this.decrypting < MAX_RECORDS_DECRYPTING) this.decrypt(record);
    else this.undecrypted.push(record);
  }

  /** Settles once every record received so far has been processed (or refused) by the session. */
  allProcessed(): Promise<void> {
    if (this.undecrypted.length === 0) return this.session.received();
    return new Promise<void>((resolve) => this.undecryptedDrained.push(resolve)).then(() =>
      this.session.received(),
    );
  }

  private decrypt(record: Uint8Array): void {
    this.decrypting++;
    this.session.receive(record).then(
      (events) => {
        this.recordDone();
        this.output.processed(events);
      },
      (err) => {
        this.recordDone();
        this.output.refused(err);
      },
    );
  }

  /** A record is processed: the next one waiting takes its decryption slot. */
  private recordDone(): void {
    this.inProcess--;
    this.decrypting--;
    const next = this.undecrypted.shift();
    if (next) this.decrypt(next);
    if (this.undecrypted.length === 0) for (const done of this.undecryptedDrained.splice(0)) done();
  }
}
