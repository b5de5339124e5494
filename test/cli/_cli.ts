/**
 * Driving `p2ptls` as a user would: `node bin/p2ptls.js …` in a child process, with real data
 * directories, stdin/stdout as byte pipes, and the exit code. Every child started here is killed when
 * the test process exits.
 *
 *   const r = await cli(['--data', dir, 'id']);                 // r.code, r.stdout (Buffer), r.stderr
 *   const p = startCli(['--data', dir, 'listen']);              // long-running
 *   await p.waitFor(/listening as/);  p.stdin.end('bytes');  await p.done;
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/processes.js';

export const BIN = join(ROOT, 'bin', 'p2ptls.js');

/** Outcome of a finished CLI process. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** A running CLI process. */
export interface CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves when the process has exited (never rejects). */
  readonly done: Promise<CliResult>;
  /** Output so far. */
  stdoutText(): string;
  stderrText(): string;
  /** Resolves with the first match of `re` in stdout or stderr (as text), or fails if the process exits first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  kill(): Promise<CliResult>;
}

const live = new Set<ChildProcessWithoutNullStreams>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Starts `p2ptls args…` with piped stdin/stdout/stderr (the source is run, never a stale build). */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, P2PTLS_CLI_SOURCE: '1', P2PTLS_PASSPHRASE: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  const out: Buffer[] = [];
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout.on('data', (b: Buffer) => {
    out.push(b);
    for (const w of [...watchers]) w();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString('utf8');
    for (const w of [...watchers]) w();
  });
  // A peer that exits before reading its stdin must not fail the test with EPIPE.
  child.stdin.on('error', () => {});
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
  const stdoutText = () => Buffer.concat(out).toString('utf8');
  return {
    child,
    done,
    stdoutText,
    stderrText: () => err,
    waitFor(re, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = stdoutText().match(re) ?? err.match(re);
          if (m) {
            cleanup();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `p2ptls ${args.join(' ')}: no ${re} within ${timeoutMs} ms\nstdout: ${stdoutText()}\nstderr: ${err}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        void done.then((r) => {
          if (!watchers.has(check)) return;
          cleanup();
          reject(
            new Error(
              `p2ptls ${args.join(' ')} exited (${r.code}) before printing ${re}\nstdout: ${stdoutText()}\nstderr: ${err}`,
            ),
          );
        });
        check();
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return done;
    },
  };
}

/** Runs `p2ptls args…` to completion, with `input` on stdin (closed at once when absent). */
export async function cli(
  args: string[],
  opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const p = startCli(args, opts.env);
  p.child.stdin.end(opts.input ?? '');
  return p.done;
}

/** A fresh temporary directory. */
export function tempDir(prefix = 'p2ptls-cli-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Asserts a failure as users see it: the exit code, exactly one line on stderr, no stack trace. */
export function assertCleanFailure(r: CliResult, code: number, mention: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(r.code, code, `exit code ${r.code}, expected ${code}; stderr: ${r.stderr}`);
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace on stderr:\n${r.stderr}`);
  assert.match(lines.at(-1) ?? '', /^p2ptls: /, `last stderr line is not a p2ptls error: ${r.stderr}`);
  assert.match(r.stderr, mention);
}

/** A signaling server started as `p2ptls signal --port 0`; resolves with its URL. */
export async function startSignal(): Promise<{ url: string; proc: CliProcess }> {
  const proc = startCli(['signal', '--port', '0']);
  const m = await proc.waitFor(/^listening (http:\/\/127\.0\.0\.1:\d+)$/m);
  return { url: m[1]!, proc };
}
