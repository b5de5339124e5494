/**
 * Transfer progress for people: a cli-progress bar on stderr when stderr is a terminal, nothing
 * otherwise (logs and pipes get the one summary line the command prints at the end).
 */
import cliProgress from 'cli-progress';

/** A progress display; every method is a no-op when disabled. */
export interface Progress {
  /** Bytes done so far (absolute, not a delta). */
  update(done: number): void;
  /** Ends the display (the bar's line is cleared, so what is printed next starts on a clean line). */
  stop(): void;
  /** The last value given to `update`. */
  readonly done: number;
}

const MiB = 1024 * 1024;

/** A bar labelled `label` for `total` bytes, starting at `start` (a resumed transfer). */
export function progressBar(enabled: boolean, label: string, total: number, start = 0): Progress {
  if (!enabled || !process.stderr.isTTY) {
    let done = start;
    return {
      update: (n) => {
        done = n;
      },
      stop() {},
      get done() {
        return done;
      },
    };
  }
  const t0 = performance.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {rate} MB/s | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  const payload = (done: number) => {
    const seconds = (performance.now() - t0) / 1000;
    return {
      doneMiB: (done / MiB).toFixed(1),
      totalMiB: (total / MiB).toFixed(1),
      rate: seconds > 0 ? ((done - start) / 1e6 / seconds).toFixed(1) : '0.0',
    };
  };
  bar.start(Math.max(total, 1), start, payload(start));
  let done = start;
  let running = true;
  return {
    update: (n) => {
      done = n;
      if (running) bar.update(n, payload(n));
    },
    stop: () => {
      if (!running) return;
      running = false;
      bar.stop();
    },
    get done() {
      return done;
    },
  };
}

/** "12.3 MiB" or "512 bytes" */
export function describeBytes(bytes: number): string {
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${bytes} bytes`;
}

/** "12.3 MiB in 0.45 s (27.4 MB/s)" */
export function describeRate(bytes: number, ms: number): string {
  return `${describeBytes(bytes)} in ${(ms / 1000).toFixed(2)} s (${mbPerSecond(bytes, ms).toFixed(1)} MB/s)`;
}

/** Decimal megabytes per second. */
export function mbPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? bytes / 1e6 / (ms / 1000) : 0;
}
