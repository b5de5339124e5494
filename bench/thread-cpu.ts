/**
 * CPU time of this process by kind of thread, from Linux's per-thread scheduler statistics
 * (`/proc/self/task/<tid>/schedstat`: nanoseconds on a CPU). Where set-up time goes when both peers
 * share a process: the JavaScript thread runs both peers' p2ptls work, simple-peer and the signaling
 * server, and every blocking call into the WebRTC stack waits there; the stack's own threads run ICE,
 * DTLS and SCTP. Undefined where there is no such file (other systems).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ThreadCpu {
  /** The main thread: JavaScript, and the blocking calls it makes into native code. */
  js: number;
  /** Node's other threads (V8's platform workers for GC and compilation, the libuv pool): named `node`, `libuv-worker`, `v8:…`. */
  node: number;
  /** Every other thread: the WebRTC stack's (signaling, network and worker threads, SCTP). */
  native: number;
}

/** Milliseconds each kind of thread of this process has run so far, or undefined off Linux. */
export function threadCpu(): ThreadCpu | undefined {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return undefined;
  }
  const spent: ThreadCpu = { js: 0, node: 0, native: 0 };
  for (const tid of tids) {
    const ms = threadCpuMs('self', tid);
    const name = procText(`/proc/self/task/${tid}/comm`)?.trim();
    if (ms === undefined || name === undefined) continue;
    const kind: keyof ThreadCpu =
      tid === String(process.pid) ? 'js' : /^(node|libuv|v8:)/.test(name) ? 'node' : 'native';
    spent[kind] += ms;
  }
  return spent;
}

/** A file under /proc, or undefined when its process or thread ended between the listing and the read. */
export function procText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Milliseconds thread `tid` of process `pid` (or `self`) has run on a CPU; undefined once it has ended. */
export function threadCpuMs(pid: string, tid: string): number | undefined {
  const ns = procText(`/proc/${pid}/task/${tid}/schedstat`)?.split(' ')[0];
  return ns === undefined ? undefined : Number(ns) / 1e6;
}

/** What each kind of thread ran since `before` (both from {@link threadCpu}). */
function threadCpuSince(before: ThreadCpu | undefined): ThreadCpu | undefined {
  const now = threadCpu();
  if (!before || !now) return undefined;
  return { js: now.js - before.js, node: now.node - before.node, native: now.native - before.native };
}

/** CPU spent by this process over a span, in ms: all of it, and by kind of thread where the system says. */
export interface CpuSpent {
  total: number;
  threads?: ThreadCpu;
}

/** Starts a span now; the function returned tells what the process spent since. */
export function cpuClock(): () => CpuSpent {
  // Threads first, the process last (and the reverse at the end): neither reading is in `total`.
  const threads0 = threadCpu();
  const process0 = process.cpuUsage();
  return () => {
    const c = process.cpuUsage(process0);
    const threads = threadCpuSince(threads0);
    return { total: (c.user + c.system) / 1000, ...(threads ? { threads } : {}) };
  };
}
