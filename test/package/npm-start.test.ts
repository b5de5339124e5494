/**
 * Stopping `npm start` stops everything it started (issue 16, point 18). The real `npm start` runs on a
 * free loopback port; the signal goes to the npm process alone, as a process manager or `kill <pid>`
 * sends it (a terminal's Ctrl-C reaches the whole process group, which hid the bug: npm's shell passed
 * SIGTERM on to nobody, and the server kept the port). Afterwards the port must be free and none of the
 * processes npm started may remain.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { freePort, ROOT } from '../helpers/processes.js';

/** Parent pid of every process, from /proc. */
function parents(): Map<number, number> {
  const map = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/PID/stat, after the parenthesised command name (which may contain spaces).
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      map.set(Number(name), ppid);
    } catch {
      // Gone while we looked.
    }
  }
  return map;
}

/** Every descendant of `pid`, with its command line (to tell a reused pid apart). */
function descendants(pid: number): Map<number, string> {
  const ppids = parents();
  const found = new Map<number, string>();
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const [child, parent] of ppids) {
      if (parent !== p || found.has(child)) continue;
      found.set(child, cmdline(child) ?? '');
      todo.push(child);
    }
  }
  return found;
}

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Resolves true when something accepts a TCP connection on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const groups: number[] = [];
after(() => {
  // Whatever a failed run left behind: each npm ran in a process group of its own.
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // Already gone: the expected case.
    }
  }
});

describe('npm start', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the npm process stops the server and every process npm started`, async () => {
      const port = await freePort();
      const npm = spawn('npm', ['start'], {
        cwd: ROOT,
        env: { ...process.env, PORT: String(port), LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      groups.push(npm.pid!);
      let output = '';
      const exited = new Promise<number | string | null>((resolve) =>
        npm.once('exit', (code, sig) => resolve(code ?? sig)),
      );
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`npm start did not print its URL within 120 s (a bound):\n${output}`)),
          120_000,
        );
        const onData = (b: Buffer) => {
          output += b.toString();
          if (output.includes(`listening http://localhost:${port}`)) {
            clearTimeout(timer);
            resolve();
          }
        };
        npm.stdout.on('data', onData);
        npm.stderr.on('data', onData);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`npm start exited (${code}) before listening:\n${output}`));
        });
      });
      assert.ok(await listening(port));
      const started = descendants(npm.pid!);
      assert.ok(started.size > 0, 'npm start runs the server in a child process');

      npm.kill(signal);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const code = await Promise.race([
        exited,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`npm did not exit within 30 s of ${signal} (a bound)`)),
            30_000,
          );
        }),
      ]);
      clearTimeout(timer);
      assert.notEqual(code, null, output);

      assert.equal(await listening(port), false, `port ${port} still taken after npm exited`);
      // Grandchildren (esbuild's service) leave when their parent's pipe closes: wait for that, bounded.
      const still = () => [...started].filter(([pid, cmd]) => cmdline(pid) === cmd);
      const deadline = Date.now() + 10_000;
      while (still().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const left = still();
      assert.deepEqual(
        left.map(([pid, cmd]) => `${pid} ${cmd.replaceAll('\0', ' ')}`),
        [],
        'processes npm start began are still running',
      );
    });
  }
});
