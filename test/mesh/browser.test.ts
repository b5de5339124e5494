// A browser member: headless Chromium runs a p2ptls Host (native RTCPeerConnection, WebCrypto) that
// joins a mesh with two Node members through a real signaling server process, and takes part in
// all-reduces (sum over a size that spans several chunks, and mean) and a barrier. Loopback only: the
// file refuses to run outside a loopback-only network namespace (scripts/test.mjs provides one).
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { Mesh } from '../../src/mesh/index.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { toBase64Url } from '../../src/util/bytes.js';
import {
  type BrowserHarness,
  LOOPBACK_WEBRTC_ARGS,
  pageApi,
  startBrowserHarness,
} from '../helpers/browser.js';
import { type Env, startEnv, within } from '../helpers/hosts.js';
import { startMeshGroup } from './_mesh.js';
import type { MeshTestApi } from './browser-member.js';

const call = pageApi<MeshTestApi>('meshTest');

/** What the browser member contributes: element i is (i % 97) * scale, as in browser-member.ts. */
function pattern(n: number, scale: number): Float32Array {
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) t[i] = (i % 97) * scale;
  return t;
}

describe('a browser member in a mesh with Node members', () => {
  let env: Env;
  let harness: BrowserHarness;
  let page: Page;
  let nodes: Mesh[];

  before(async () => {
    const addresses = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
    assert.ok(
      addresses.length > 0 && addresses.every((a) => loopbackOnly(a, '')),
      `not in a loopback-only network namespace (${addresses.join(', ')}); run it with scripts/test.mjs`,
    );
    env = await startEnv(3);
    const [browserId, ...nodeIds] = env.ids as [(typeof env.ids)[0], ...typeof env.ids];
    harness = await startBrowserHarness({
      entry: 'test/mesh/browser-member.ts',
      chromiumArgs: LOOPBACK_WEBRTC_ARGS,
      permissions: ['camera', 'microphone'],
    });
    page = await harness.newPage();
    const joined = await call(page, 'join', {
      url: env.url,
      secret: await browserId.exportSecret(),
      peers: nodeIds.map((p) => ({ identity: p.exportPublic(), psk: toBase64Url(env.psk(browserId, p)) })),
      room: 'browser-mesh',
    });
    assert.equal(joined.peerId, browserId.peerId);
    nodes = (await startMeshGroup(env, nodeIds, 'browser-mesh')).meshes;
    await within(Promise.all(nodes.map((m) => m.waitForMembers(3))), 30_000, 'node members');
    const ring = await call(page, 'waitForMembers', 3);
    assert.deepEqual(ring, nodes[0]!.ring);
  });

  after(async () => {
    if (page) await call(page, 'stop').catch(() => {});
    await harness?.close();
    await env?.close();
  });

  it('allReduce sum over 3 chunks and mean, with the browser in the ring', async () => {
    const n = 40_003;
    const inputs = [pattern(n, 0.5), pattern(n, 1), pattern(n, 2)];
    const copies = inputs.slice(1).map((t) => t.slice());
    const [fromBrowser] = await within(
      Promise.all([call(page, 'allReduce', n, 0.5, 'sum'), ...nodes.map((m, i) => m.allReduce(copies[i]!))]),
      60_000,
      'allReduce with the browser',
    );
    assert.ok(fromBrowser.ok, fromBrowser.ok ? '' : fromBrowser.error);
    const expected = pattern(n, 3.5);
    assert.deepEqual(copies[0], expected);
    assert.deepEqual(copies[1], expected);
    assert.deepEqual(Float32Array.from(fromBrowser.values), expected);

    const means = inputs.slice(1).map((t) => t.slice());
    const [mean] = await within(
      Promise.all([
        call(page, 'allReduce', 100, 0.5, 'mean'),
        ...nodes.map((m, i) => m.allReduce(means[i]!.subarray(0, 100), 'mean')),
      ]),
      60_000,
      'mean',
    );
    assert.ok(mean.ok, mean.ok ? '' : mean.error);
    for (let i = 0; i < 100; i++) assert.ok(Math.abs(mean.values[i]! - ((i % 97) * 3.5) / 3) < 1e-4);
  });

  it('barrier with the browser', async () => {
    await within(Promise.all([call(page, 'barrier'), ...nodes.map((m) => m.barrier())]), 30_000, 'barrier');
  });
});
