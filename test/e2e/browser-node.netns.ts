// Chromium ↔ Node interop, run by browser-node.test.ts inside a fresh network namespace whose only
// interface is `lo` (so nothing but 127.0.0.1 / ::1 exists, for Chromium, @roamhq/wrtc and the signaling
// server alike). A p2ptls Host in headless Chromium (native RTCPeerConnection, WebCrypto, bundled with
// the browser build's options) and a Node Host (@roamhq/wrtc) pair through a real signaling server
// process, then exchange TCP-mode messages (one ≥ 1 MiB each way, SHA-256 checked by node:crypto on one
// side and WebCrypto on the other) and SLLP datagrams in both directions — once with Node dialing, once
// with the browser dialing. Both sides also use `loopbackOnly`.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import type { Connection } from '../../src/host/connection.js';
import type { Host } from '../../src/host/host.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { toBase64Url } from '../../src/util/bytes.js';
import {
  type BrowserHarness,
  browserBuild,
  LOOPBACK_WEBRTC_ARGS,
  pageApi,
  serveFiles,
  startBrowserHarness,
} from '../helpers/browser.js';
import {
  type Acceptor,
  autoAccept,
  type Env,
  nextMessage,
  startEnv,
  text,
  until,
  within,
} from '../helpers/hosts.js';
import type { PeerTestApi } from './browser-peer.js';

/** Calls `globalThis.peerTest[method](...args)` inside the page. */
const call = pageApi<PeerTestApi>('peerTest');

/** The same deterministic bytes as `pattern` in browser-peer.ts. */
function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) % 251;
  return out;
}
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('Chromium ↔ Node over loopback', () => {
  let env: Env;
  let harness: BrowserHarness;
  let page: Page;
  let node: Host;
  let acceptor: Acceptor;
  let browserPeerId = '';

  /** What the browser gathered and saw, for failure messages. */
  const diagnostics = async () => JSON.stringify(await call(page, 'diagnostics'), null, 1);

  before(async () => {
    // Refuse to run anywhere but in the loopback-only namespace: the rule is loopback, ever.
    const addresses = Object.values(networkInterfaces()).flatMap((list) =>
      (list ?? []).map((a) => a.address),
    );
    assert.ok(
      addresses.length > 0 && addresses.every((a) => loopbackOnly(a, '')),
      `not in a loopback-only network namespace (addresses: ${addresses.join(', ')}); run browser-node.test.ts`,
    );
    env = await startEnv(2);
    const [nodeId, browserId] = [env.ids[0]!, env.ids[1]!];
    node = await env.host(nodeId, { peers: [browserId] });
    acceptor = autoAccept(node);
    harness = await startBrowserHarness({
      entry: 'test/e2e/browser-peer.ts',
      chromiumArgs: LOOPBACK_WEBRTC_ARGS,
      permissions: ['camera', 'microphone'],
    });
    page = await harness.newPage();
    const started = await call(page, 'start', {
      url: env.url,
      secret: await browserId.exportSecret(),
      peer: nodeId.exportPublic(),
      psk: toBase64Url(env.psk(nodeId, browserId)),
    });
    browserPeerId = started.peerId;
    assert.equal(browserPeerId, browserId.peerId);
  });

  after(async () => {
    if (page) await call(page, 'stop').catch(() => {});
    await harness?.close();
    await env?.close();
  });

  /** Both modes, both ways, then checks that the browser's selected path is loopback. */
  async function exchange(conn: Connection, id: string): Promise<void> {
    // TCP mode, short messages.
    await conn.send('hello from node');
    const m1 = await call(page, 'nextMessage', id, 15_000);
    assert.equal(m1?.text, 'hello from node', await diagnostics());
    const fromBrowser = nextMessage(conn);
    await call(page, 'send', id, 'hello from chromium');
    assert.equal(text(await fromBrowser), 'hello from chromium');

    // TCP mode, ≥ 1 MiB each way, SHA-256 computed by node:crypto on one side and WebCrypto on the other.
    const big = pattern(1024 * 1024 + 4099, 7);
    await conn.send(big);
    const got = await call(page, 'nextMessage', id, 60_000);
    assert.ok(got, 'the browser received no 1 MiB message');
    assert.equal(got.length, big.byteLength);
    assert.equal(got.sha256, sha256(big));
    const bigFromBrowser = nextMessage(conn, 60_000);
    const browserDigest = await call(page, 'sendPattern', id, 1536 * 1024 + 17, 3);
    const received = await bigFromBrowser;
    assert.equal(received.byteLength, 1536 * 1024 + 17);
    assert.equal(sha256(received), browserDigest);
    assert.equal(browserDigest, sha256(pattern(1536 * 1024 + 17, 3)));

    // SLLP mode: unreliable, so over loopback most (not necessarily all) datagrams must arrive, intact.
    const COUNT = 20;
    const toBrowser = Array.from({ length: COUNT }, (_, i) => `node dgram ${i}`);
    for (const d of toBrowser) {
      assert.ok((await conn.sendDatagram(d)) >= 0, 'a datagram was dropped locally');
      await new Promise((r) => setTimeout(r, 5));
    }
    let inBrowser: string[] = [];
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      inBrowser = await call(page, 'receivedDatagrams', id);
      if (inBrowser.length >= COUNT) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(inBrowser.length >= COUNT - 2, `browser got ${inBrowser.length}/${COUNT} datagrams`);
    for (const d of inBrowser) assert.ok(toBrowser.includes(d), `unexpected datagram ${d}`);

    const inNode: string[] = [];
    conn.datagrams.on('datagram', (d) => inNode.push(text(d.data)));
    const seqs = await call(page, 'sendDatagrams', id, 'chromium dgram', COUNT, 5);
    assert.ok(
      seqs.every((s) => s >= 0),
      'a datagram was dropped locally in the browser',
    );
    await until(() => inNode.length >= COUNT, 10_000, 'datagrams in node').catch(() => {});
    assert.ok(inNode.length >= COUNT - 2, `node got ${inNode.length}/${COUNT} datagrams`);
    for (const d of inNode) assert.match(d, /^chromium dgram \d+$/);

    // The path: loopback on the browser's side of the selected pair, a host candidate on Node's.
    const pairs = await call(page, 'selectedPairs');
    assert.ok(pairs.length > 0, 'no selected candidate pair in the browser');
    for (const p of pairs) {
      // Chromium redacts the address of a peer-reflexive remote candidate (the peer's check arrived before
      // its candidate signal) as ""; in this namespace it can only be loopback too.
      assert.ok(loopbackOnly(p.local, ''), `local address not loopback: ${JSON.stringify(p)}`);
      assert.ok(
        p.remote === '' ? p.remoteType === 'prflx' : loopbackOnly(p.remote, ''),
        `remote address not loopback: ${JSON.stringify(p)}`,
      );
    }
    assert.equal((await conn.stats()).localCandidateType, 'host');
  }

  it('Node dials the browser; messages (incl. 1.5 MiB) and datagrams flow both ways', async () => {
    const conn = await within(node.connect(browserPeerId), 30_000, 'node → browser connect').catch(
      async (err: unknown) => assert.fail(`${String(err)}\nbrowser: ${await diagnostics()}`),
    );
    const inPage = await call(page, 'nextAccepted', 20_000);
    assert.ok(inPage.ok, `${inPage.ok ? '' : inPage.error}\n${await diagnostics()}`);
    assert.equal(inPage.peerId, node.peerId);
    await exchange(conn, inPage.id);
    await call(page, 'closeConnection', inPage.id);
    await conn.close().catch(() => {});
  });

  it('the browser dials Node; messages (incl. 1.5 MiB) and datagrams flow both ways', async () => {
    const dialed = await call(page, 'connect', node.peerId);
    assert.ok(dialed.ok, `${dialed.ok ? '' : dialed.error}\n${await diagnostics()}`);
    assert.equal(dialed.peerId, node.peerId);
    const conn = await acceptor.next(20_000);
    assert.equal(conn.peerId, browserPeerId);
    await exchange(conn, dialed.id);
    await call(page, 'closeConnection', dialed.id);
    await conn.close().catch(() => {});
  });

  it('Chromium gathers loopback host candidates (no mDNS names) and nothing else', async () => {
    const lines = await call(page, 'gatherOnly');
    const { gathered } = await call(page, 'diagnostics');
    const all = [...lines, ...gathered];
    assert.ok(lines.length > 0, 'Chromium gathered no candidate at all');
    for (const c of all) {
      const address = c.split(/\s+/)[4] ?? '';
      assert.ok(loopbackOnly(address, c), `non-loopback candidate: ${c}`);
    }
    assert.ok(
      lines.some((c) => / 127\.0\.0\.1 /.test(c)),
      `no 127.0.0.1 candidate: ${lines.join(' | ')}`,
    );
  });

  it('the minified browser bundle loads as a module and simple-peer runs in it (shims included)', async () => {
    // The same bundle scripts/build-browser.mjs writes to dist/browser/p2ptls.js, built in memory.
    const out = await build({
      ...(await browserBuild()).browserBuildOptions(),
      entryPoints: ['src/browser.ts'],
      minify: true,
      write: false,
      logLevel: 'silent',
    });
    const server = await serveFiles({
      '/index.html': { type: 'text/html; charset=utf-8', body: '<!doctype html><title>bundle</title>' },
      '/p2ptls.js': { type: 'text/javascript; charset=utf-8', body: out.outputFiles[0]!.text },
    });
    const context = await harness.browser.newContext({ permissions: ['camera', 'microphone'] });
    try {
      const bundlePage = await context.newPage();
      const errors: string[] = [];
      bundlePage.on('pageerror', (err) => errors.push(String(err)));
      await bundlePage.goto(`${server.origin}/`);
      const result = await bundlePage.evaluate(async () => {
        interface Link {
          on(event: 'signal', fn: (s: { type?: string; sdp?: string }) => void): void;
          close(): void;
        }
        const url = '/p2ptls.js';
        const m = (await import(url)) as {
          PeerLink: new (o: { rtc: unknown; initiator: boolean; candidateFilter: unknown }) => Link;
          browserRtc(): unknown;
          loopbackOnly: unknown;
          startBrowserHost: unknown;
          openIndexedDbPeerStore: unknown;
        };
        const link = new m.PeerLink({
          rtc: m.browserRtc(),
          initiator: true,
          candidateFilter: m.loopbackOnly,
        });
        const offer = await new Promise<{ type?: string; sdp?: string }>((resolve) =>
          link.on('signal', resolve),
        );
        link.close();
        return {
          offer: offer.type ?? null,
          sctp: offer.sdp?.includes('webrtc-datachannel') ?? false,
          exports: [typeof m.startBrowserHost, typeof m.openIndexedDbPeerStore],
        };
      });
      assert.deepEqual(result, { offer: 'offer', sctp: true, exports: ['function', 'function'] });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await server.close();
    }
  });
});
