/**
 * A queue read as an async iterator. `end()` finishes every pending and future read once the queued
 * items are read; `end(error)` makes them reject with `error` instead, so a stream that lost its tail
 * never looks like one that ended. `onTake` runs as each item leaves for a reader (flow control gives
 * the item's credit back there).
 */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private readonly waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  private ended = false;
  private error: unknown;

  constructor(private readonly onTake?: (item: T) => void) {}

  push(item: T): void {
    if (this.ended) return;
    const w = this.waiting.shift();
    if (w) {
      this.onTake?.(item);
      w.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    for (const w of this.waiting.splice(0)) {
      if (error === undefined) w.resolve({ value: undefined, done: true });
      else w.reject(error);
    }
  }

  get size(): number {
    return this.items.length;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const next = (): Promise<IteratorResult<T>> => {
      if (this.items.length > 0) {
        const item = this.items.shift()!;
        this.onTake?.(item);
        return Promise.resolve({ value: item, done: false });
      }
      if (this.ended) {
        return this.error === undefined
          ? Promise.resolve({ value: undefined, done: true })
          : Promise.reject(this.error);
      }
      return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    };
    const it: AsyncIterableIterator<T> = {
      next,
      return: async () => ({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }
}
