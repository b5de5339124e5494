// The web demo with a Node worker on the other end (a p2ptls Host on @roamhq/wrtc in this test process):
// pairing through the page's approval dialog, both modes both ways, and peers the page must refuse.
import { isP2PTLSError } from '../../src/errors.js';
import type { Connection } from '../../src/host/connection.js';
import type { Host } from '../../src/host/host.js';
import { Identity, openMemoryPeerStore, SignalingClient, startNodeHost } from '../../src/node.js';
import type { PeerLink } from '../../src/transport/peer-link.js';
import { loopbackOnly } from '../../src/transport/rtc.js';
import { decodeAppMessage, encodeControl } from '../../web-demo/src/app-protocol.js';
import { FrameAssembler, FrameSplitter } from '../../web-demo/src/video.js';
import { type DemoPeer, expect, test } from './demo-fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Node worker host with an in-memory peer store on the demo's signaling server. */
async function nodeWorker(origin: string, identity: Identity) {
  const store = await openMemoryPeerStore();
  // The server listens on 127.0.0.1; Node may resolve "localhost" to ::1 first.
  const signaling = new SignalingClient({ url: origin.replace('localhost', '127.0.0.1'), identity });
  const host = await startNodeHost({ identity, peers: store, signaling, candidateFilter: loopbackOnly });
  return { host, store, signaling };
}

/** The code of the P2PTLSError `p` rejects with (fails the test on success or a foreign error). */
async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isP2PTLSError(err)) throw new Error(`expected a P2PTLSError, got ${String(err)}`);
  return err.code;
}

const hosts: Host[] = [];

/** The worker redeems an invite from the page, whose user approves. */
async function pairThroughInvite(page: DemoPeer, host: Host): Promise<void> {
  const link = await page.createInvite();
  const paired = host.pair(new URL(link).searchParams.get('invite') ?? '');
  await page.answerPairing('Approve');
  expect((await paired).publicIdentity.peerId).toBe(page.peerId);
  await expect(page.peerItem(host.peerId)).toBeVisible();
}

/** A worker paired with the page through an invite the page's user approves. */
async function pairedWorker(page: DemoPeer, origin: string) {
  const identity = await Identity.generate();
  const worker = await nodeWorker(origin, identity);
  hosts.push(worker.host);
  await pairThroughInvite(page, worker.host);
  return { ...worker, identity };
}
test.afterEach(async () => {
  for (const h of hosts.splice(0)) await h.close();
});

test('browser ↔ Node worker: pair with approval, chat in TCP mode and video in SLLP mode both ways', async ({
  newPeer,
  demo,
}) => {
  const page = await newPeer('browser');
  const worker = await pairedWorker(page, demo.origin);
  const { identity } = worker;

  const conn: Connection = await worker.host.connect(page.peerId);
  await page.expectConnected(identity.peerId);
  const session = page.session(identity.peerId);

  await conn.send(encodeControl({ type: 'chat', id: 'n1', text: 'hello from a Node worker' }));
  await expect(session.getByTestId('chat-log')).toContainText('hello from a Node worker');
  const chat = new Promise<string>((resolve) =>
    conn.on('message', (m) => {
      const msg = decodeAppMessage(m);
      if (msg.type === 'chat') resolve(msg.text);
    }),
  );
  await page.chat(identity.peerId, 'hello Node worker');
  expect(await chat).toBe('hello Node worker');

  // Node → browser video. Node has no image encoder, so the page makes the JPEG the worker streams.
  const jpeg = Uint8Array.from(
    await page.page.evaluate(async () => {
      const canvas = new OffscreenCanvas(640, 480);
      const ctx = canvas.getContext('2d');
      if (!ctx) throw new Error('no 2d context');
      ctx.fillStyle = '#2f6fed';
      ctx.fillRect(0, 0, 640, 480);
      const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.8 });
      return [...new Uint8Array(await blob.arrayBuffer())];
    }),
  );
  // Streams at about 50 fps until the page has shown more than 30 frames. How many it gets to show
  // depends on the machine's load (a frame arriving while the previous one decodes replaces it, as live
  // video should), so the page's count decides when to stop; the deadline only bounds the wait.
  const splitter = new FrameSplitter(16_000);
  const shown = session.getByTestId('stat-frames');
  const deadline = Date.now() + 60_000;
  while (Number(await shown.textContent()) <= 30) {
    if (Date.now() > deadline) throw new Error(`only ${await shown.textContent()} frames shown in 60 s`);
    for (const piece of splitter.split(jpeg, Date.now())) await conn.sendDatagram(piece);
    await sleep(20);
  }

  // Browser → Node video from the fake camera, reassembled by the worker.
  const assembler = new FrameAssembler();
  conn.datagrams.on('datagram', (d) => assembler.accept(d.data));
  await session.getByTestId('camera-toggle').click();
  await expect.poll(() => assembler.stats.framesCompleted).toBeGreaterThan(30);
  expect(assembler.stats.framesCompleted).toBeGreaterThan(assembler.stats.framesIncomplete);
  await page.screenshot('6-node-worker');
});

test('hostile peers: an unsolicited pairing the user rejects, an unpaired dialer and a wrong PSK are refused', async ({
  newPeer,
  demo,
}) => {
  const page = await newPeer('browser');
  const identity = await Identity.generate();
  const worker = await nodeWorker(demo.origin, identity);
  hosts.push(worker.host);

  // Pairing by bare peerId (no invite token): the dialog warns, the user rejects, nothing is stored.
  const asked = refusal(worker.host.pair(page.peerId, { timeoutMs: 60_000 }));
  const dialog = page.page.getByTestId('pairing-dialog');
  await expect(dialog).toContainText('did not use one of your invite links');
  await page.screenshot('7-unsolicited-pairing');
  await page.answerPairing('Reject');
  expect(await asked).toBe('pairing_rejected');
  expect(await worker.store.list()).toMatchObject({ peers: [] });
  await page.reload();
  await expect(page.page.locator('[data-testid="peer-item"]')).toHaveCount(0);

  // Not paired: the page refuses the dial (unknown_peer) and says so.
  await worker.store.put({
    publicIdentity: (await worker.signaling.lookup(page.peerId)).identity!,
    psk: new Uint8Array(32).fill(7),
  });
  expect(await refusal(worker.host.connect(page.peerId, { attempts: 1 }))).toBe('unknown_peer');
  await page.expectEvent(/Refused a connection from .*not a paired peer \(unknown_peer\)/);

  // Paired for real, then an impostor with the worker's identity but the wrong PSK dials.
  await pairThroughInvite(page, worker.host);
  await worker.host.close();
  const impostor = await nodeWorker(demo.origin, identity);
  hosts.push(impostor.host);
  await impostor.store.put({
    publicIdentity: (await impostor.signaling.lookup(page.peerId)).identity!,
    psk: crypto.getRandomValues(new Uint8Array(32)),
  });
  expect(await refusal(impostor.host.connect(page.peerId, { attempts: 1 }))).toBe('bad_binder');
  await page.expectEvent(/Refused a connection from .*wrong key\) \(bad_binder\)/);
  await expect(page.session(identity.peerId)).toHaveCount(0);
  await page.screenshot('8-wrong-key-refused');
});

test('a tampered record closes the connection and the page says so; the worker going away shows offline', async ({
  newPeer,
  demo,
}) => {
  const page = await newPeer('browser');
  const worker = await pairedWorker(page, demo.origin);
  const conn = await worker.host.connect(page.peerId);
  await page.expectConnected(worker.identity.peerId);

  // Flip one bit of the next record on the wire, below p2ptls (as a compromised relay or path would).
  const link = (conn as unknown as { link: PeerLink }).link;
  const send = link.sendReliable.bind(link);
  link.sendReliable = (record: Uint8Array) => {
    const copy = record.slice();
    copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 1;
    link.sendReliable = send;
    send(copy);
  };
  await conn.send(encodeControl({ type: 'chat', id: 't1', text: 'this record is tampered in transit' }));
  const status = page.session(worker.identity.peerId).getByTestId('conn-status');
  await expect(status).toHaveText(/disconnected — tampered data detected.*\(bad_record_mac\)/);
  await expect(page.session(worker.identity.peerId).getByTestId('chat-log')).not.toContainText(
    'tampered in transit',
  );
  await page.expectEvent(/closed: tampered data detected/);
  await page.screenshot('9-tampered');

  await worker.host.close();
  await worker.signaling.close();
  await expect(page.peerItem(worker.identity.peerId).getByTestId('peer-state')).toHaveText('offline');
});
