/**
 * Tracing in the ecosystem's convention (the `debug` package, as simple-peer and socket.io use it):
 * `DEBUG=p2ptls:*` prints every state change, close cause and flow-control stall, so a flaky failure can
 * be explained after the fact. Off by default and nearly free when off.
 */
import createDebug from 'debug';

export type Log = (format: string, ...args: unknown[]) => void;

/** A logger for one part of p2ptls, e.g. `logger('connection')` → `p2ptls:connection`. */
export function logger(part: string): Log {
  return createDebug(`p2ptls:${part}`);
}

/** A short, stable tag for one peer in log lines (the first 12 characters of its peerId). */
export function shortId(peerId: string): string {
  return peerId.slice(0, 12);
}
