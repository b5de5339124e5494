/**
 * npm start — the signaling server on http://127.0.0.1:8080 (PORT to change), plus a narrated demo until
 * the web demo lands: part 1 runs the protocol between two endpoints in memory (tampering and a peer
 * without the PSK included); part 2 pairs two Node hosts through the running signaling server and
 * connects them over real WebRTC data channels on loopback. Every step printed is really done.
 * The signaling server keeps running until Ctrl-C.
 */
import { startSignalingServer } from '../signaling-server/server.js';
import { Identity, isP2PTLSError, openMemoryPeerStore, SignalingClient, startNodeHost } from '../src/node.js';
import { nodeCryptoAead } from '../src/runtime/node-aead.js';
import { connectInMemory, pumpDatagrams, pumpReliable } from '../src/testing/in-memory.js';
import { loopbackOnly } from '../src/transport/rtc.js';
import { toHex } from '../src/util/bytes.js';

const log = (s: string) => console.log(s);
const t = () => performance.now();

log('part 1 — the protocol in memory (no network: both peers live in this process)\n');
let t0 = t();
const [alice, bob, mallory] = await Promise.all([
  Identity.generate(),
  Identity.generate(),
  Identity.generate(),
]);
log(`1. generated three RSA-2048 identities in ${(t() - t0).toFixed(0)} ms`);
log(`   alice   ${alice.peerId}`);
log(`   bob     ${bob.peerId}`);
log(`   mallory ${mallory.peerId}  (knows bob's public key, not the pair PSK)`);

const psk = crypto.getRandomValues(new Uint8Array(32));
log(`2. alice and bob share a pair PSK (pairing would derive it): ${toHex(psk).slice(0, 16)}…`);

t0 = t();
const { initiator: a, responder: b } = await connectInMemory({
  initiator: alice,
  responder: bob,
  psk,
  session: { aead: nodeCryptoAead },
});
log(`3. handshake alice → bob: mutual RSA-PSS auth + X25519 + PSK, ${(t() - t0).toFixed(1)} ms`);
log(
  `   transcript hash ${toHex(a.session.transcriptHash).slice(0, 32)}… (identical on both sides: ${toHex(a.session.transcriptHash) === toHex(b.session.transcriptHash)})`,
);

await a.session.send('hello bob, this is alice over TCP mode');
const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
t0 = t();
await a.session.send(big);
const recordsOnWire = a.sentReliable.length;
const events = await pumpReliable(a, b);
const msgs = events.flatMap((e) => (e.type === 'message' ? [e.data] : []));
log(`4. TCP mode: bob received ${msgs.length} messages from ${recordsOnWire} encrypted records`);
log(`   "${new TextDecoder().decode(msgs[0])}"`);
const same = msgs[1]!.length === big.length && msgs[1]!.every((x, i) => x === big[i]);
log(`   a 5 MiB message, fragmented and reassembled in ${(t() - t0).toFixed(0)} ms, intact: ${same}`);

for (let i = 0; i < 100; i++) await b.session.sendDatagram(`frame ${i}`, Date.now());
let n = 0;
const results = await pumpDatagrams(
  b,
  a,
  () => (n++ % 10 === 3 ? 'drop' : n % 10 === 5 ? 'duplicate' : 'deliver'),
  (xs) => xs.reverse(),
);
const delivered = results.filter((r) => r.ok).length;
const s = a.session.datagramStats;
log(
  `5. SLLP mode: bob sent 100 datagrams through a pipe that drops 10%, duplicates 10% and reverses order:` +
    `\n   delivered ${delivered}, dropped as replay ${s.dropped.replay}, reordered ${s.reordered} — never twice, never fatal`,
);

await b.session.send('a record mallory will flip a bit in');
const rec = b.sentReliable.pop()!;
rec[rec.length - 1]! ^= 1;
try {
  await a.session.receive(rec);
} catch (err) {
  if (isP2PTLSError(err))
    log(`6. one flipped bit in a record → alice refuses it: ${err.code} ("${err.message}")`);
}

try {
  await connectInMemory({ initiator: mallory, responder: bob, psk: new Uint8Array(32), responderPsk: psk });
} catch (err) {
  if (isP2PTLSError(err))
    log(`7. mallory dials bob without the pair PSK → bob refuses before any RSA work: ${err.code}`);
}

await webrtcDemo();

/** Part 2: a real signaling server, real pairing, real WebRTC between two Node hosts on loopback. */
async function webrtcDemo(): Promise<void> {
  const port = Number(process.env.PORT ?? 8080);
  const server = await startSignalingServer({ port, host: '127.0.0.1', logLevel: 'warn' }).catch(() =>
    startSignalingServer({ port: 0, host: '127.0.0.1', logLevel: 'warn' }),
  );
  log(`\npart 2 — signaling server listening on ${server.url} (GET /healthz, /metrics)`);
  const hosts = [];
  const stores = [];
  for (const identity of [alice, bob]) {
    const store = await openMemoryPeerStore();
    const signaling = new SignalingClient({ url: server.url, identity });
    hosts.push(await startNodeHost({ identity, peers: store, signaling, candidateFilter: loopbackOnly }));
    stores.push({ store, signaling });
  }
  const [ha, hb] = hosts as [
    Awaited<ReturnType<typeof startNodeHost>>,
    Awaited<ReturnType<typeof startNodeHost>>,
  ];
  const [sa, sb] = stores as [(typeof stores)[0], (typeof stores)[0]];

  let t0 = t();
  const invite = sb.signaling.createInvite();
  log(`8. bob creates an invite (peerId + one-time token + server URL): ${invite.slice(0, 48)}…`);
  const bobPaired = new Promise<void>((resolve) =>
    sb.signaling.once('paired', ({ peer, psk: pairPsk }) => {
      void sb.store.put({ publicIdentity: peer, psk: pairPsk, label: 'alice' }).then(() => resolve());
    }),
  );
  const pairing = await sa.signaling.pair(invite);
  await sa.store.put({ publicIdentity: pairing.peer, psk: pairing.psk, label: 'bob' });
  await bobPaired;
  log(
    `9. alice redeems it: RSA-signed PSK shares exchanged through the server, both stores hold the pair ` +
      `(${(t() - t0).toFixed(0)} ms); the server never saw the PSK`,
  );

  let bobSideClosed: Promise<{ code: number; reason: string; byPeer: boolean }> | undefined;
  void (async () => {
    for await (const request of hb.incoming()) {
      const conn = await request.verify().catch(() => undefined);
      bobSideClosed = conn?.closed;
      conn?.on('message', (m) => void conn.send(m).catch(() => {}));
      conn?.datagrams.on('datagram', (d) => void conn.datagrams.send(d.data).catch(() => {}));
    }
  })();
  t0 = t();
  const conn = await ha.connect(bob.peerId);
  log(
    `10. alice dials bob over WebRTC: ICE + DTLS + p2ptls handshake bound to both DTLS fingerprints, ${(t() - t0).toFixed(0)} ms`,
  );
  const payload = new Uint8Array(20 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
  t0 = t();
  const echoed = new Promise<Uint8Array>((resolve) => conn.once('message', resolve));
  await conn.send(payload);
  const back = await echoed;
  const intact = back.length === payload.length && back.every((x, i) => x === payload[i]);
  const mbs = (2 * payload.length) / 1048576 / ((t() - t0) / 1000);
  log(
    `11. TCP mode: a 20 MiB message to bob and back, intact: ${intact}, ${mbs.toFixed(0)} MB/s both ways combined`,
  );
  let echoes = 0;
  conn.datagrams.on('datagram', () => echoes++);
  for (let i = 0; i < 200; i++) await conn.datagrams.send(`frame ${i}`);
  await new Promise((r) => setTimeout(r, 300));
  const stats = await conn.stats();
  log(
    `12. SLLP mode: 200 datagrams to bob and back, ${echoes} echoed; ` +
      `selected candidates ${stats.localCandidateType}/${stats.remoteCandidateType}`,
  );
  await conn.close('demo finished');
  const seen = await bobSideClosed;
  log(
    `13. alice closes with a reason; bob's side sees code ${seen?.code} "${seen?.reason}", by peer: ${seen?.byPeer}`,
  );
  await ha.close();
  await hb.close();
  await sa.signaling.close();
  await sb.signaling.close();
  log(`\nThe signaling server is still running on ${server.url}. Ctrl-C to stop.`);
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
