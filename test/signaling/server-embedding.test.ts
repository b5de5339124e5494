// The server embedded in another program (as `npm start` will do): in-process start, static files,
// a custom request handler, /healthz, close(); and the CLI's graceful shutdown.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startSignalingServer } from '../../signaling-server/index.js';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { startSignalingProcess } from '../helpers/processes.js';
import { httpGet } from './_util.js';

/** GET with the path sent verbatim (fetch would normalise `..` away). */
function rawGet(url: string, path: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('embedding the signaling server', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'p2ptls-static-'));
    writeFileSync(join(dir, 'index.html'), '<h1>demo</h1>');
    writeFileSync(join(dir, 'app.js'), 'console.log(1)');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs in process with static files and a request handler, and closes cleanly', async () => {
    const server = await startSignalingServer({
      port: 0,
      staticDir: dir,
      logger: pino({ level: 'silent' }),
      requestHandler: (req, res) => {
        if (req.url !== '/api/hello') return false;
        res.end('hello');
        return true;
      },
    });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const page = await httpGet(server.url, '/');
      assert.equal(page.status, 200);
      assert.equal(page.text, '<h1>demo</h1>');
      assert.equal((await httpGet(server.url, '/app.js')).text, 'console.log(1)');
      assert.equal((await httpGet(server.url, '/api/hello')).text, 'hello');
      assert.equal((await httpGet(server.url, '/missing')).status, 404);
      // No favicon.svg in this directory: /favicon.ico is still a 404, not some other file.
      assert.equal((await httpGet(server.url, '/favicon.ico')).status, 404);
      writeFileSync(join(dir, 'favicon.svg'), '<svg/>');
      const icon = await httpGet(server.url, '/favicon.ico');
      assert.equal(icon.status, 200, "the browser's automatic /favicon.ico gets the SVG icon");
      assert.equal(icon.text, '<svg/>');
      assert.equal(await rawGet(server.url, '/../package.json'), 404);
      assert.equal(await rawGet(server.url, '/%2e%2e/package.json'), 404);
      assert.equal((await httpGet(server.url, '/healthz')).status, 200);
      const [a, b] = await Promise.all([Identity.generate(), Identity.generate()]);
      const ca = new SignalingClient({ url: server.url, identity: a });
      const cb = new SignalingClient({ url: server.url, identity: b });
      await Promise.all([ca.connect(), cb.connect()]);
      const got = new Promise((resolve) => cb.on('signal', (s) => resolve(s.data)));
      await ca.sendSignal(b.peerId, 'in process');
      assert.equal(await got, 'in process');
      await Promise.all([ca.close(), cb.close()]);
    } finally {
      await server.close();
    }
    await assert.rejects(fetch(`${server.url}/healthz`));
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`the CLI shuts down gracefully on ${signal} (exit 0)`, async () => {
      const s = await startSignalingProcess();
      s.proc.child.kill(signal);
      assert.equal(await s.proc.exited, 0);
      await s.kill();
    });
  }
});
