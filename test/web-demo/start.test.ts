// `npm start` as a user runs it: one process serving the web demo and the signaling server, printing its
// URL, and stopping cleanly on Ctrl-C (SIGINT).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { it } from 'node:test';
import { io } from 'socket.io-client';
import { within } from '../helpers/hosts.js';
import { ROOT } from '../helpers/processes.js';

it('npm start serves the web demo and signaling on one origin, then stops cleanly on SIGINT', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', ICE_SERVERS: '[{"urls":"stun:127.0.0.1:3478"}]' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = once(child, 'exit');
  try {
    const origin = await within(
      (async () => {
        for (;;) {
          const m = /listening (http:\/\/localhost:\d+)/.exec(out);
          if (m?.[1]) return m[1];
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      60_000,
      'npm start prints its URL',
    );
    const base = origin.replace('localhost', '127.0.0.1');
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<script type="module" src="\/dist\/app\.js">/);
    const app = await fetch(`${base}/dist/app.js`);
    assert.equal(app.status, 200);
    assert.ok((await app.arrayBuffer()).byteLength > 50_000, 'the bundled demo is served');
    assert.equal((await fetch(`${base}/styles.css`)).status, 200);
    assert.deepEqual(await (await fetch(`${base}/dist/config.json`)).json(), {
      iceServers: [{ urls: 'stun:127.0.0.1:3478' }],
    });
    assert.equal((await fetch(`${base}/../package.json`)).status, 404);

    // The same origin answers socket.io: the page's SignalingClient uses location.origin.
    const socket = io(base, { transports: ['websocket'], reconnection: false });
    await within(
      new Promise((resolve) => socket.once('connect', () => resolve(undefined))),
      10_000,
      'socket.io connects',
    );
    socket.close();

    child.kill('SIGINT');
    const [code] = await within(exited, 10_000, 'npm start stops on SIGINT');
    assert.equal(code, 0, out);
    assert.match(out, /SIGINT: stopping/);
  } finally {
    child.kill('SIGKILL');
  }
});

it('npm start refuses an ICE_SERVERS value that is not a list of ICE servers, in plain words', async () => {
  for (const [value, message] of [
    ['stun:x', /ICE_SERVERS is not JSON/],
    ['[{"url":"stun:x"}]', /ICE_SERVERS: /],
  ] as const) {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', ICE_SERVERS: value },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    const [code] = await within(once(child, 'exit'), 30_000, 'npm start exits');
    assert.equal(code, 2);
    assert.match(err, message);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
  }
});
