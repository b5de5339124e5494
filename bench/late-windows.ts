/**
 * What each thread ran while SLLP datagrams were late: `bench:transport --only latency --late-windows FILE`
 * writes the window of every datagram that took over 1 ms (its send and its arrival, on the monotonic
 * clock); this script lines those windows up with a `perf record -k CLOCK_MONOTONIC -g` of the same time
 * and prints, per thread, how many of its CPU samples fell inside them, and the frames its samples in
 * the windows ran most. A thread whose share inside is far above the windows' share of the time ran
 * while datagrams were late. (docs/BENCHMARKS.md, SLLP latency, has what it found on 2026-12-02.)
 *
 *   node --import tsx bench/transport.ts --only latency --backend node-datachannel \
 *     --late-windows /tmp/late.txt &   # node itself: `npx` would add an npm process to the recording
 *   perf record -k CLOCK_MONOTONIC -F 4999 -g -a -o /tmp/perf.data -- sleep 40   # the runs' length
 *   perf script -i /tmp/perf.data -F comm,pid,tid,time,ip,sym > /tmp/stacks.txt
 *   npx tsx bench/late-windows.ts /tmp/late.txt /tmp/stacks.txt [--kind ours|raw] [--frames N]
 *
 * Linux only (perf). Both node's performance.now() and perf's CLOCK_MONOTONIC read the kernel's
 * monotonic clock, so the windows need no conversion beyond the offset taken at start.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { flag } from './flags.js';

/** A datagram slower than this is late: the same line as bench:transport's "over 1 ms" counts. */
const LATE_MS = 1;

/** Records late datagrams' windows in bench:transport's process, for `file` (none: records nothing). */
export class LateWindows {
  private readonly lines: string[] = [];
  /** performance.now() counts from the process's time origin; perf's clock from boot. */
  private readonly originNs = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));

  constructor(private readonly file: string | undefined) {}

  /** The datagram sent at `sentMs` (performance.now()) arrived now: its latency in ms. */
  arrived(kind: 'raw' | 'ours', sentMs: number): number {
    const now = performance.now();
    const latency = now - sentMs;
    if (this.file && latency > LATE_MS) this.lines.push(`${kind} ${this.ns(sentMs)} ${this.ns(now)}`);
    return latency;
  }

  /** Writes every window so far to the file, and says so; nothing without a file. */
  write(): string | undefined {
    if (!this.file) return undefined;
    writeFileSync(this.file, `${this.lines.join('\n')}\n`);
    return `late datagrams' windows (${this.lines.length}) written to ${this.file}: see bench/late-windows.ts`;
  }

  private ns(ms: number): bigint {
    return this.originNs + BigInt(Math.round(ms * 1e6));
  }
}

interface Sample {
  /** Seconds on the monotonic clock. */
  at: number;
  thread: string;
  frames: string[];
}

/** `perf script -F comm,pid,tid,time,ip,sym`: a header line per sample, then one line per frame. */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  let current: Sample | undefined;
  for (const line of text.split('\n')) {
    const head = /^(\S.*?)\s+(\d+)\/(\d+)\s+(\d+\.\d+):/.exec(line);
    if (head) {
      current = { at: Number(head[4]), thread: `${head[1]}:${head[3]} (pid ${head[2]})`, frames: [] };
      samples.push(current);
    } else if (current && line.trim()) {
      // "\t<ip> <symbol>": the symbol may hold spaces
      const frame = line.trim().replace(/^[0-9a-f]+\s+/, '');
      current.frames.push(frame.slice(0, 110));
    }
  }
  return samples.sort((a, b) => a.at - b.at);
}

function parseWindows(text: string, kind: string | undefined): [number, number][] {
  const windows: [number, number][] = [];
  for (const line of text.split('\n')) {
    const [k, sent, arrived] = line.trim().split(/\s+/);
    if (!arrived || (kind && k !== kind)) continue;
    windows.push([Number(BigInt(sent!)) / 1e9, Number(BigInt(arrived)) / 1e9]);
  }
  return windows.sort((a, b) => a[0] - b[0]);
}

/** Whether `at` falls in one of the sorted `windows` (they may overlap). */
function inside(windows: [number, number][], ends: number[], at: number): boolean {
  // ends is non-decreasing: a binary search finds the first window that could hold `at`
  let lo = 0;
  let hi = windows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ends[mid]! < at) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < windows.length && windows[i]![0] <= at; i++) if (windows[i]![1] >= at) return true;
  return false;
}

function report(windowsFile: string, stacksFile: string, kind: string | undefined, topFrames: number): void {
  const samples = parseSamples(readFileSync(stacksFile, 'utf8'));
  if (samples.length === 0) throw new Error(`no samples in ${stacksFile}`);
  const [first, last] = [samples[0]!.at, samples[samples.length - 1]!.at];
  const windows = parseWindows(readFileSync(windowsFile, 'utf8'), kind).filter(
    ([s, e]) => s >= first && e <= last,
  );
  if (windows.length === 0)
    throw new Error('no late window falls within the recording: same machine, same clock?');
  // ends[i]: the latest end among windows[0..i]; covered: their union's length
  const ends: number[] = [];
  let covered = 0;
  let reach = 0;
  for (const [s, e] of windows) {
    covered += Math.max(0, e - Math.max(s, reach));
    reach = Math.max(reach, e);
    ends.push(reach);
  }
  console.log(
    `${windows.length} late windows${kind ? ` (${kind})` : ''} cover ${((100 * covered) / (last - first)).toFixed(1)}% of ${(last - first).toFixed(1)} s recorded`,
  );
  const perThread = new Map<string, { all: number; inside: Sample[] }>();
  for (const sample of samples) {
    const t = perThread.get(sample.thread) ?? { all: 0, inside: [] };
    t.all++;
    if (inside(windows, ends, sample.at)) t.inside.push(sample);
    perThread.set(sample.thread, t);
  }
  // Threads that ran far more inside the windows than their share of the time would give, first; idle
  // (swapper) and threads with few samples left out.
  const share = covered / (last - first);
  const threads = [...perThread]
    .filter(([name, t]) => !name.startsWith('swapper:') && t.all >= 50)
    .map(([name, t]) => ({ name, ...t, times: t.inside.length / t.all / share }))
    .sort((a, b) => b.times - a.times);
  console.log("thread                                       samples  inside  × the windows' share of time");
  for (const t of threads.slice(0, 20)) {
    const row = `${t.name.padEnd(44)} ${String(t.all).padStart(7)} ${String(t.inside.length).padStart(7)}`;
    console.log(`${row}  ${t.times.toFixed(1)}`);
  }
  for (const t of threads.slice(0, 4)) {
    const counts = new Map<string, number>();
    for (const s of t.inside) for (const f of new Set(s.frames)) counts.set(f, (counts.get(f) ?? 0) + 1);
    console.log(`\n${t.name}: frames of its ${t.inside.length} samples inside the windows (inclusive)`);
    for (const [f, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, topFrames))
      console.log(`  ${String(n).padStart(6)}  ${f}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [windowsFile, stacksFile] = process.argv
    .slice(2)
    .filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
  if (!windowsFile || !stacksFile) {
    console.error(
      'usage: npx tsx bench/late-windows.ts <windows file> <perf script output> [--kind ours|raw] [--frames N]',
    );
    process.exit(2);
  }
  report(windowsFile, stacksFile, flag('kind'), Number(flag('frames') ?? 25));
}
