/**
 * The seed's HashDatabase example with p2ptls's LevelDB peer store: PSKs and private keys are encrypted
 * at rest under a passphrase, so a second store object opens the same directory only with the same one.
 *
 *   node --import tsx examples/seed/database.ts [DIR]      # DIR default: a new temp directory
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Identity, isP2PTLSError, openLevelPeerStore, PSK_LENGTH } from '../../src/node.js';

const path = process.argv[2] ?? (await mkdtemp(join(tmpdir(), 'p2ptls-db-')));
const passphrase = randomBytes(16).toString('base64url'); // the seed's `random_string(16)` key
const peer = await Identity.generate(); // the seed's `test_config()` peer

const database = await openLevelPeerStore({ path, encryption: passphrase });
await database.put({ publicIdentity: peer.publicIdentity, psk: randomBytes(PSK_LENGTH), label: 'worker-2' });
// LevelDB allows one open handle per directory: a second one would get `store_locked`.
await database.close();

const secondDatabase = await openLevelPeerStore({ path, encryption: passphrase });
const newPeer = await secondDatabase.get(peer.peerId);
await secondDatabase.close();
if (!newPeer) throw new Error('the peer was not found again');
console.log(`recovered peer ${newPeer.peerId} (${newPeer.label}, ${newPeer.trust}) from ${path}`);

try {
  await openLevelPeerStore({ path, encryption: 'not the passphrase' });
  throw new Error('a wrong passphrase opened the store');
} catch (err) {
  if (!isP2PTLSError(err) || err.code !== 'wrong_passphrase') throw err;
  console.log(`wrong passphrase refused: ${err.code}`);
}
