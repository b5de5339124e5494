/**
 * CPU time of the Chromium this process launched, by role, and how idle the machine was, from Linux's
 * scheduler statistics (`/proc/<pid>/task/<tid>/schedstat`, `/proc/stat`). Why: on a 2-core machine a
 * page-to-page transfer can leave no core idle, and then bench:browser's throughput ratio measures the
 * CPU that p2ptls's AES-GCM adds to the pages, not how p2ptls moves data. On 2026-12-03 Chromium's
 * network service took 42–66 ms per MiB for either kind, the pages' main threads 2–13 for raw and 8–21
 * for p2ptls, with 2–5% of the machine idle (docs/BENCHMARKS.md, "Video beside a bulk transfer, in the
 * browser"). These figures say, run by run, whether that was the case. Undefined off Linux.
 */
import { readdirSync } from 'node:fs';
import { procText, threadCpuMs } from './thread-cpu.js';

/** Milliseconds on a CPU, by role in Chromium. */
export interface ChromiumCpu {
  /** The renderers' main threads: the pages' JavaScript, and WebCrypto, which this Chromium runs there. */
  pagesMain: number;
  /** The renderers' other threads: WebRTC's network and worker threads (SCTP, DTLS), IPC, V8's helpers. */
  pagesOther: number;
  /** The network service, which carries the pages' WebRTC UDP. */
  network: number;
  /** Every other process: the browser, the GPU process, helpers. */
  other: number;
}

/** What the machine's CPUs did over a span: `busy` and `idle` in the kernel's ticks. */
interface MachineTicks {
  busy: number;
  idle: number;
}

/**
 * A reading of both, taken together: each Chromium thread's CPU so far, by `pid/tid`. Kept per thread so
 * that a thread that ends between two readings (Chromium retires idle pool threads) takes only its own
 * time with it, instead of making its role's total go down.
 */
export interface ChromiumCpuReading {
  threads: Map<string, { role: keyof ChromiumCpu; ms: number }>;
  machine: MachineTicks;
}

/** What was spent between two readings: Chromium's ms by role, and the machine's idle share (0–1). */
export interface ChromiumCpuSpent {
  chromium: ChromiumCpu;
  idle: number;
}

/** Processes descended from this one (Playwright's Chromium is a child), by pid. */
function descendants(): string[] {
  const children = new Map<string, string[]>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = procText(`/proc/${pid}/stat`);
    if (!stat) continue;
    // `pid (comm) state ppid …`: the name may hold spaces and parentheses, so read after the last ')'.
    const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!;
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: string[] = [];
  const queue = [String(process.pid)];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function roleOf(cmdline: string): 'renderer' | 'network' | 'other' {
  if (cmdline.includes('--type=renderer')) return 'renderer';
  if (cmdline.includes('--utility-sub-type=network.mojom.NetworkService')) return 'network';
  return 'other';
}

function machineTicks(): MachineTicks | undefined {
  const line = procText('/proc/stat')?.split('\n')[0];
  if (!line?.startsWith('cpu ')) return undefined;
  // user nice system idle iowait irq softirq steal …: idle and iowait are the idle ones.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = ticks[3]! + ticks[4]!;
  return { busy: ticks.reduce((a, b) => a + b, 0) - idle, idle };
}

/** The CPU this process's Chromium has run so far, by thread, and the machine's ticks; undefined off Linux. */
export function chromiumCpu(): ChromiumCpuReading | undefined {
  const machine = machineTicks();
  if (!machine) return undefined;
  const threads: ChromiumCpuReading['threads'] = new Map();
  for (const pid of descendants()) {
    const cmdline = procText(`/proc/${pid}/cmdline`);
    if (!cmdline?.includes('chrom')) continue;
    const kind = roleOf(cmdline);
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const ms = threadCpuMs(pid, tid);
      if (ms === undefined) continue;
      const role = kind === 'renderer' ? (tid === pid ? 'pagesMain' : 'pagesOther') : kind;
      threads.set(`${pid}/${tid}`, { role, ms });
    }
  }
  return { threads, machine };
}

/** What was spent since `before` (both from {@link chromiumCpu}): threads that ended in between are left out. */
export function chromiumCpuSince(before: ChromiumCpuReading | undefined): ChromiumCpuSpent | undefined {
  const now = chromiumCpu();
  if (!before || !now) return undefined;
  const chromium: ChromiumCpu = { pagesMain: 0, pagesOther: 0, network: 0, other: 0 };
  for (const [id, { role, ms }] of now.threads) chromium[role] += ms - (before.threads.get(id)?.ms ?? 0);
  const busy = now.machine.busy - before.machine.busy;
  const idle = now.machine.idle - before.machine.idle;
  return { chromium, idle: busy + idle > 0 ? idle / (busy + idle) : 0 };
}
