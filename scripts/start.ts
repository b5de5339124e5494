/**
 * npm start — until the signaling server and the WebRTC transport land, an honest in-process demo: two
 * endpoints with fresh identities and a pair PSK run the p2ptls handshake over memory and exchange data
 * in TCP mode and SLLP mode. Every step printed is really done; nothing touches the network.
 */
import { Identity, isP2PTLSError } from '../src/index.js';
import { nodeCryptoAead } from '../src/runtime/node-aead.js';
import { connectInMemory, pumpDatagrams, pumpReliable } from '../src/testing/in-memory.js';
import { toHex } from '../src/util/bytes.js';

const log = (s: string) => console.log(s);
const t = () => performance.now();

log('p2ptls in-process demo (no network: both peers live in this process)\n');
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

log('\nnext: the signaling server, WebRTC transport and web demo turn this into a real peer connection.');
