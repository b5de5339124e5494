/**
 * Real processes for tests: spawn, wait for a line of output, kill. Every process started here is also
 * killed when the test process exits, so a failing test never leaves servers behind; still call `kill()`
 * (or `killAll()`) in an `after` hook.
 *
 *   const sig = await startSignalingProcess();            // sig.url, sig.kill()
 *   const redis = await startRedis();                     // redis.url, redis.kill()
 *   const demo = await startDemoProcess();                 // demo.origin: what `npm start` serves
 *   const p = spawnProcess('cmd', ['args']); await p.waitForLine(/ready/);
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A child process whose output is collected line by line. */
export interface ManagedProcess {
  readonly child: ChildProcess;
  /** Every line printed so far (stdout and stderr interleaved, as `out: …` / `err: …`). */
  readonly lines: string[];
  /** Resolves with the first match of `re` on a stdout or stderr line (past or future). */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) once the process exits. */
  readonly exited: Promise<number | string | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  kill(graceMs?: number): Promise<void>;
}

const live = new Set<ManagedProcess>();
process.once('exit', () => {
  for (const p of live) p.child.kill('SIGKILL');
});

/** Spawns `cmd args` with piped output. */
export function spawnProcess(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; echo?: boolean } = {},
): ManagedProcess {
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const feed = (tag: string) => {
    let buf = '';
    return (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        lines.push(`${tag}: ${line}`);
        if (opts.echo) console.error(`[${cmd}] ${line}`);
        for (const w of [...watchers]) w(line);
        i = buf.indexOf('\n');
      }
    };
  };
  child.stdout?.on('data', feed('out'));
  child.stderr?.on('data', feed('err'));
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal));
    child.once('error', () => resolve('spawn-error'));
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });

  const proc: ManagedProcess = {
    child,
    lines,
    exited,
    waitForLine(re, timeoutMs = 30_000) {
      for (const l of lines) {
        const m = l.replace(/^(out|err): /, '').match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          watchers.delete(watch);
        };
        const watch = (line: string) => {
          const m = line.match(re);
          if (m) {
            cleanup();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `${cmd}: no line matching ${re} within ${timeoutMs} ms\n${lines.slice(-20).join('\n')}`,
            ),
          );
        }, timeoutMs);
        watchers.add(watch);
        void exited.then((code) => {
          if (!watchers.has(watch)) return;
          cleanup();
          reject(new Error(`${cmd} exited (${code}) before printing ${re}\n${lines.slice(-20).join('\n')}`));
        });
      });
    },
    async kill(graceMs = 3000) {
      if (!done) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      live.delete(proc);
    },
  };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

/** Kills every process started through this module that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill()));
}

/** A free TCP port on 127.0.0.1 (free when asked; another process could take it before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A signaling server running in its own process. */
export interface SignalingProcess {
  url: string;
  port: number;
  proc: ManagedProcess;
  kill(): Promise<void>;
}

/**
 * Starts `signaling-server/main.ts` on 127.0.0.1 with a random port and waits for its
 * `listening <url>` line. `args` are extra command-line flags; `env` e.g. `{ REDIS_URL }`.
 */
export async function startSignalingProcess(
  opts: { args?: string[]; env?: NodeJS.ProcessEnv; echo?: boolean } = {},
): Promise<SignalingProcess> {
  const proc = spawnProcess(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'signaling-server', 'main.ts'),
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--log-level',
      'warn',
      ...(opts.args ?? []),
    ],
    { env: opts.env ?? {}, echo: opts.echo ?? false },
  );
  try {
    const m = await proc.waitForLine(/^listening (http:\/\/\S+)$/, 60_000);
    const url = m[1]!;
    return { url, port: Number(new URL(url).port), proc, kill: () => proc.kill() };
  } catch (err) {
    await proc.kill();
    throw err;
  }
}

/**
 * Runs what `npm start` runs (scripts/start.ts: the web demo and signaling server) on a free port and
 * waits for its `listening <origin>` line (`http://localhost:<port>`).
 */
export async function startDemoProcess(
  env: NodeJS.ProcessEnv = {},
): Promise<{ origin: string; proc: ManagedProcess }> {
  const proc = spawnProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'start.ts')], {
    env: { PORT: '0', LOG_LEVEL: 'warn', ...env },
  });
  try {
    const m = await proc.waitForLine(/^listening (http:\/\/localhost:\d+)$/, 60_000);
    return { origin: m[1]!, proc };
  } catch (err) {
    await proc.kill();
    throw err;
  }
}

/** A throwaway redis-server on 127.0.0.1 (no persistence). */
export interface RedisProcess {
  url: string;
  port: number;
  proc: ManagedProcess;
  kill(): Promise<void>;
}

/** Installs redis-server with apt if missing (scripts/ensure-deps.mjs), then starts one on a random port. */
export async function startRedis(): Promise<RedisProcess> {
  const depsUrl = pathToFileURL(join(ROOT, 'scripts', 'ensure-deps.mjs')).href;
  const deps = (await import(depsUrl)) as { ensureApt: (binary: string, pkg: string) => string };
  const bin = deps.ensureApt('redis-server', 'redis-server');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc = spawnProcess(bin, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
    ]);
    try {
      await proc.waitForLine(/Ready to accept connections/, 20_000);
      return { url: `redis://127.0.0.1:${port}`, port, proc, kill: () => proc.kill() };
    } catch (err) {
      await proc.kill();
      // The port may have been taken between freePort() and listen(): try another.
      if (attempt >= 2) throw err;
    }
  }
}
