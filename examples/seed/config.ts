/**
 * The seed's `test_config()`: a host with a persistent identity and one paired peer, so that each
 * example can stay about the API it shows. Both sides keep a LevelDB peer store under one base directory
 * (`<base>/server`, `<base>/client`); the first run pairs them through the signaling server with an
 * invite file (`<base>/invite`), later runs load the pair from the stores.
 *
 *   base directory: argv[2] (unless empty), else $P2PTLS_SEED_DIR, else <tmp>/p2ptls-seed
 *   signaling:      $P2PTLS_SIGNAL, else http://127.0.0.1:8080 (`npm run signaling`)
 *   passphrase:     $P2PTLS_PASSPHRASE (a real application asks its user for it)
 */
import { access, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Host,
  loopbackOnly,
  openLevelPeerStore,
  type PeerId,
  type PeerStore,
  SignalingClient,
  startNodeHost,
} from '../../src/node.js';

export interface SeedConfig {
  host: Host;
  store: PeerStore;
  /** The paired peer on the other side. */
  peer: PeerId;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isLoopback(url: string): boolean {
  const name = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** The server side writes the invite, the client side redeems it. */
export async function testConfig(role: 'server' | 'client'): Promise<SeedConfig> {
  const base = process.argv[2] || process.env.P2PTLS_SEED_DIR || join(tmpdir(), 'p2ptls-seed');
  const url = process.env.P2PTLS_SIGNAL ?? 'http://127.0.0.1:8080';
  const passphrase = process.env.P2PTLS_PASSPHRASE ?? 'p2ptls seed example';
  const inviteFile = join(base, 'invite');

  const store = await openLevelPeerStore({ path: join(base, role), encryption: passphrase });
  const identity = await store.loadOrCreateIdentity(); // same peerId on every run
  const signaling = new SignalingClient({ url, identity });
  // On one machine, keep ICE off every non-loopback address.
  const host = await startNodeHost({
    identity,
    peers: store,
    signaling,
    ...(isLoopback(url) ? { candidateFilter: loopbackOnly } : {}),
  });
  const close = async () => {
    await host.close();
    await signaling.close();
    await store.close();
  };

  const { peers } = await store.list();
  let peer = peers.find((p) => p.trust === 'paired')?.peerId;
  if (!peer && role === 'server') {
    // An invite left by an earlier run carries a token this process never issued.
    await rm(inviteFile, { force: true });
    // The host announces a pairing once the pair is stored, so the client's first dial verifies.
    const paired = new Promise<PeerId>((resolve) => {
      host.once('paired', ({ publicIdentity }) => resolve(publicIdentity.peerId));
    });
    // Written under another name first so that the client never reads half an invite.
    await writeFile(`${inviteFile}.tmp`, host.createInvite());
    await rename(`${inviteFile}.tmp`, inviteFile);
    console.log(`invite written to ${inviteFile}; waiting for the client to pair`);
    peer = await paired;
    await rm(inviteFile, { force: true });
  } else if (!peer) {
    for (
      let waited = 0;
      !(await access(inviteFile).then(
        () => true,
        () => false,
      ));
      waited += 100
    ) {
      if (waited > 60_000) throw new Error(`no invite at ${inviteFile} after 60 s: start the server first`);
      await sleep(100);
    }
    const paired = await host.pair(await readFile(inviteFile, 'utf8'), { label: 'seed server' });
    peer = paired.publicIdentity.peerId;
  }
  console.log(`${role} ${identity.peerId} paired with ${peer}`);
  return { host, store, peer, close };
}
