// `npm start` as a user runs it: one process serving the web demo and the signaling server, printing its
// URL, and stopping cleanly on Ctrl-C (SIGINT).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { io } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { within } from '../helpers/hosts.js';
import { spawnProcess, startDemoProcess } from '../helpers/processes.js';

it('npm start serves the web demo and signaling on one origin, then stops cleanly on SIGINT', async () => {
  const { origin, proc } = await startDemoProcess({ ICE_SERVERS: '[{"urls":"stun:127.0.0.1:3478"}]' });
  try {
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
    // And logs in there: the page signs `location.origin` (the printed http://localhost:<port>), Node
    // peers often use 127.0.0.1; both are this server's own origins (PROTOCOL.md §9).
    const identity = await Identity.generate();
    for (const url of [origin, base]) {
      const client = new SignalingClient({ url, identity });
      try {
        await client.connect();
        assert.equal(client.isAuthenticated, true, url);
      } finally {
        await client.close();
      }
    }

    proc.child.kill('SIGINT');
    assert.equal(await within(proc.exited, 10_000, 'npm start stops on SIGINT'), 0, proc.lines.join('\n'));
    assert.ok(proc.lines.includes('out: SIGINT: stopping'), proc.lines.join('\n'));
  } finally {
    await proc.kill();
  }
});

it('npm start refuses an ICE_SERVERS value that is not a list of ICE servers, in plain words', async () => {
  for (const [value, message] of [
    ['stun:x', /^err: ICE_SERVERS is not JSON/],
    ['[{"url":"stun:x"}]', /^err: ICE_SERVERS\[0\]\.urls: expected an ICE server URL or a list of them/],
    ['[{"urls":"http://x"}]', /^err: ICE_SERVERS\[0\]\.urls: an ICE server URL starts with stun:/],
    ['[{"urls":["stun:x","turn:y"]}]', /^err: ICE_SERVERS\[0\]: a turn: or turns: server needs a username/],
  ] as const) {
    const proc = spawnProcess(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
      env: { PORT: '0', ICE_SERVERS: value },
    });
    assert.equal(await within(proc.exited, 30_000, 'npm start exits'), 2);
    assert.ok(
      proc.lines.some((l) => message.test(l)),
      proc.lines.join('\n'),
    );
    assert.ok(!proc.lines.some((l) => /^err:\s+at /.test(l)), 'no stack trace');
  }
});
