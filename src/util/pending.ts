import type { P2PTLSError } from '../errors.js';

/**
 * A value one step waits for, settled from elsewhere (an event, another step); the first settlement
 * wins. Its promise never counts as an unhandled rejection: whoever awaits it sees the error.
 */
export class Pending<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: P2PTLSError) => void;
  settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (v) => {
        this.settled = true;
        resolve(v);
      };
      this.reject = (e) => {
        this.settled = true;
        reject(e);
      };
    });
    this.promise.catch(() => {});
  }
}
