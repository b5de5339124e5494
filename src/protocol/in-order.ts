/**
 * Work that completes out of order, finished in the order it was started. With an asynchronous AEAD
 * (WebCrypto), records seal and decrypt concurrently on its thread pool, yet they must go out and be
 * delivered in sequence order (PROTOCOL.md §5.1): this queue is that order.
 *
 * Why a queue and not a chain of promises: each record used to wait for the one before through two
 * chains of `then`s (the record layer's and the session's), about a dozen promise reactions per record.
 * Here a record costs one reaction to its own work and one promise for its caller. bench:protocol's
 * record-layer cost (a no-cipher AEAD, ours − raw, per message sent and received): 13.4–13.9 µs at 1 KiB
 * and 14.5–15.4 µs at 16 KiB with the chains, 2.9–3.6 and 5.9–8.3 µs with this queue (two runs each),
 * against 56–94 µs for one WebCrypto seal+open.
 */
export interface InOrderSteps<T, R> {
  /** The work succeeded: runs in start order, synchronously; what it returns (or throws) settles `add`. */
  done(value: T): R | PromiseLike<R>;
  /** The work failed: runs in start order too; what it returns (or throws) settles `add`. */
  failed(error: unknown): R | PromiseLike<R>;
}

/** One piece of work, from `add` until it is finished in its turn. */
class Slot<T, R> {
  state: 'waiting' | 'done' | 'failed' = 'waiting';
  value: T | undefined;
  error: unknown;
  next: Slot<T, R> | undefined;
  readonly promise: Promise<R>;
  resolve!: (r: R | PromiseLike<R>) => void;
  reject!: (error: unknown) => void;

  constructor() {
    this.promise = new Promise<R>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

export class InOrder<T, R> {
  private head: Slot<T, R> | undefined;
  private tail: Slot<T, R> | undefined;
  private count = 0;
  /** A step returned a promise: the next waits until the caller has seen that one settle. */
  private blocked = false;
  private readonly resume = () => {
    this.blocked = false;
    this.drain();
  };

  constructor(private readonly steps: InOrderSteps<T, R>) {}

  /**
   * Nothing added and unfinished, and no result still settling: work done within a call may be finished
   * there without the queue (see {@link hold}). Otherwise nothing may skip the queue.
   */
  get idle(): boolean {
    return this.count === 0 && !this.blocked;
  }

  /**
   * A piece of work finished outside the queue (while {@link idle}) whose result is still settling:
   * what is added next is finished after it has.
   */
  hold(result: Promise<unknown>): void {
    this.blocked = true;
    result.then(this.resume, this.resume);
  }

  /** Queues `work`; settles with what its step returns, once every earlier piece has been finished. */
  add(work: Promise<T>): Promise<R> {
    const slot = new Slot<T, R>();
    if (this.tail) this.tail.next = slot;
    else this.head = slot;
    this.tail = slot;
    this.count++;
    work.then(
      (value) => {
        slot.state = 'done';
        slot.value = value;
        this.drain();
      },
      (error: unknown) => {
        slot.state = 'failed';
        slot.error = error;
        this.drain();
      },
    );
    return slot.promise;
  }

  /** Settles (never rejects) once everything added so far has been finished. */
  settled(): Promise<void> {
    const last = this.tail;
    return last ? last.promise.then(noop, noop) : Promise.resolve();
  }

  /**
   * Finishes the work at the head of the queue for as long as it is complete. A step that returns a
   * promise holds the next ones until its own `add` promise has settled, so that callers see every `add`
   * settle in order, not only the steps run in order (a record whose reply is being sealed must not be
   * overtaken by the record after it).
   */
  private drain(): void {
    for (let slot = this.head; slot && slot.state !== 'waiting' && !this.blocked; slot = this.head) {
      this.head = slot.next;
      if (!this.head) this.tail = undefined;
      this.count--;
      try {
        const result =
          slot.state === 'done' ? this.steps.done(slot.value as T) : this.steps.failed(slot.error);
        slot.resolve(result);
        if (result instanceof Promise) this.hold(slot.promise);
      } catch (err) {
        slot.reject(err);
      }
      slot.value = undefined;
      slot.next = undefined;
    }
  }
}

function noop(): void {}
