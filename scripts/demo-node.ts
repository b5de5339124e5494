/**
 * npm run demo:node — the headless demo, one command: a signaling server in this process on a random
 * loopback port, two Node peers (alice, bob) with identities in LevelDB peer stores, pairing through a
 * real invite, a WebRTC connection, messages in TCP mode, datagrams in SLLP mode and a file sent with
 * SHA-256 verification (the same code as `p2ptls send` / `p2ptls receive`). Every line printed is
 * something that was done, with its timing.
 *
 *   npm run demo:node                          # throwaway identities in a temp directory
 *   npm run demo:node -- --dir ./demo-data     # keep them: a second run loads them and skips pairing
 *   npm run demo:node -- --file-mib 32         # file size (default 16; env P2PTLS_DEMO_FILE_MIB)
 *   npm run demo:node -- --backend node-datachannel
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Scope } from '../src/cli/context.js';
import { type LocalPeer, pairLocal, startLocalPeer, startLocalSignaling } from '../src/cli/local.js';
import { describeRate } from '../src/cli/progress.js';
import { CliSession } from '../src/cli/session.js';
import { hashFile, receiveFile, sendFile } from '../src/cli/transfer.js';
import { isP2PTLSError } from '../src/errors.js';
import type { Connection } from '../src/host/connection.js';
import type { NodeRtcBackend } from '../src/runtime/node-rtc.js';
import { openLevelPeerStore } from '../src/store/level.js';

const log = (s: string) => console.log(s);
const t = () => performance.now();
const ms = (t0: number) => `${(t() - t0).toFixed(0)} ms`;

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    'file-mib': { type: 'string' },
    backend: { type: 'string' },
  },
});
const fileMiB = Number(values['file-mib'] ?? process.env.P2PTLS_DEMO_FILE_MIB ?? 16);
const backend = (values.backend ?? 'wrtc') as NodeRtcBackend;
if (!(fileMiB > 0 && fileMiB <= 1024) || !['wrtc', 'node-datachannel'].includes(backend)) {
  console.error('usage: demo-node [--dir DIR] [--file-mib 1..1024] [--backend wrtc|node-datachannel]');
  process.exit(2);
}

const scope = new Scope();
const temp = await mkdtemp(join(tmpdir(), 'p2ptls-demo-'));
scope.defer(() => rm(temp, { recursive: true, force: true }));
const dataDir = values.dir ?? temp;

async function run(): Promise<void> {
  let t0 = t();
  const url = await startLocalSignaling(scope);
  log(`1. signaling server listening on ${url} (${ms(t0)})`);

  const peers: LocalPeer[] = [];
  for (const name of ['alice', 'bob']) {
    t0 = t();
    const store = await openLevelPeerStore({
      path: join(dataDir, name),
      encryption: { mode: 'unencrypted' },
    });
    scope.defer(() => store.close());
    const had = await store.getIdentity();
    const identity = had ?? (await store.loadOrCreateIdentity());
    peers.push(await startLocalPeer(name, url, identity, store, backend, scope));
    log(
      `2. ${name.padEnd(5)} ${had ? 'loaded' : 'generated'} identity ${identity.peerId} ` +
        `(RSA-2048, LevelDB store ${join(dataDir, name)}) and authenticated to signaling, ${ms(t0)}`,
    );
  }
  const [alice, bob] = peers as [LocalPeer, LocalPeer];

  if ((await alice.store.lookup(bob.identity.peerId)) && (await bob.store.lookup(alice.identity.peerId))) {
    log('3. already paired (stores from a previous run): skipping pairing');
  } else {
    const { invite, ms: pairMs } = await pairLocal(alice, bob);
    log(`3. bob created an invite: ${invite.slice(0, 60)}…`);
    log(
      `   alice redeemed it: RSA-signed PSK shares through the server, pair stored on both sides, ${pairMs.toFixed(0)} ms`,
    );
  }

  // Bob serves one connection: echoes messages and datagrams, then receives a file.
  const bobSide = bob.host.accept(); // a dial that fails is passed over: connect() retries it
  bobSide.catch(() => {}); // awaited once alice's connect() is back
  t0 = t();
  const conn = await alice.host.connect(bob.identity.peerId);
  const bobConn: Connection = await bobSide;
  log(`4. alice dialed bob: ICE + DTLS + p2ptls handshake (RSA-PSS, X25519, PSK) in ${ms(t0)}`);

  // TCP mode: ordered, reliable messages; bob answers each one.
  const replies: string[] = [];
  const gotReplies = new Promise<void>((resolve) =>
    conn.on('message', (m) => {
      replies.push(new TextDecoder().decode(m));
      if (replies.length === 3) resolve();
    }),
  );
  const echo = bobConn.on('message', (m) => void bobConn.send(`bob got: ${new TextDecoder().decode(m)}`));
  t0 = t();
  for (const text of ['hello bob', 'this is TCP mode', 'messages keep their order']) await conn.send(text);
  await gotReplies;
  echo();
  log(`5. TCP mode: 3 messages to bob and 3 answers back in ${ms(t0)}:`);
  for (const r of replies) log(`   alice received "${r}"`);

  // SLLP mode: unordered, unreliable datagrams, each authenticated on its own. Paced one every ~1 ms,
  // as bench:transport measures latency: sent in bursts they would queue behind each other, and the
  // figure would be queueing time (sent 50 at a time, the median round trip was 26 ms: issue 16).
  let echoed = 0;
  const rtts: number[] = [];
  bobConn.datagrams.on('datagram', (d) => void bobConn.datagrams.send(d.data).catch(() => {}));
  conn.datagrams.on('datagram', (d) => {
    echoed++;
    rtts.push(performance.now() - new DataView(d.data.buffer, d.data.byteOffset, 8).getFloat64(0));
  });
  const count = 500;
  for (let i = 0; i < count; i++) {
    const frame = new Uint8Array(512);
    new DataView(frame.buffer).setFloat64(0, performance.now());
    await conn.datagrams.send(frame);
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => setTimeout(r, 300));
  rtts.sort((a, b) => a - b);
  const stats = await conn.stats();
  const rtt = rtts[Math.floor(rtts.length / 2)] ?? Number.NaN;
  log(
    `6. SLLP mode: ${count} datagrams of 512 bytes, one every ~1 ms, to bob and back: ${echoed} echoed; ` +
      `median round trip ${rtt.toFixed(2)} ms (there and back: about ${(rtt / 2).toFixed(2)} ms one way, ` +
      `the figure npm run bench:transport reports as SLLP one-way latency); candidate pair ` +
      `${stats.localCandidateType ?? '?'}/${stats.remoteCandidateType ?? '?'}`,
  );

  // A file, with the CLI's transfer code: offer (name, size, SHA-256), stream, verify, done.
  const size = Math.round(fileMiB * 1024 * 1024);
  const file = join(temp, 'payload.bin');
  await writeFile(file, randomBytes(size));
  const expected = await hashFile(file);
  const inbox = join(temp, 'bob-inbox');
  await mkdir(inbox, { recursive: true });
  const receiving = (async () => {
    const session = new CliSession(bobConn);
    const offer = await session.expect('offer');
    return receiveFile(session, offer, inbox);
  })();
  const sent = await sendFile(new CliSession(conn), file);
  const received = await receiving;
  const intact = received.sha256 === expected && sent.sha256 === expected;
  log(
    `7. file: alice sent ${fileMiB} MiB of random bytes: ${describeRate(sent.transferred, sent.ms)}; ` +
      `bob verified SHA-256 ${received.sha256.slice(0, 16)}…: ${intact ? 'intact' : 'MISMATCH'}`,
  );
  if (!intact) throw new Error('file hashes differ');

  t0 = t();
  await conn.close(0, 'demo finished');
  const seen = await bobConn.closed;
  log(`8. alice closed the connection; bob saw "${seen.reason}" (by peer: ${seen.byPeer}) after ${ms(t0)}`);
}

try {
  const t0 = t();
  await run();
  log(`\ndemo finished in ${((t() - t0) / 1000).toFixed(1)} s`);
  await scope.close();
  process.exit(0);
} catch (err) {
  console.error(`demo failed: ${isP2PTLSError(err) ? `${err.message} [${err.code}]` : String(err)}`);
  await scope.close();
  process.exit(1);
}
