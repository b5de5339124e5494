/**
 * npm run vectors — regenerates test/vectors/*.json. Run it only when the wire format changes on
 * purpose, and update docs/PROTOCOL.md in the same commit.
 */
import { writeFileSync } from 'node:fs';
import { Identity } from '../src/identity/index.js';
import { exportEphemeral, generateEphemeral, Suite } from '../src/protocol/index.js';
import { dtlsChannelBinding, dtlsOfferBinding } from '../src/transport/channel-binding.js';
import { toHex } from '../src/util/bytes.js';
import { buildVector } from '../test/vectors/build.js';

const [initiator, responder] = await Promise.all([Identity.generate(), Identity.generate()]);
const filled = (n: number, start: number) => toHex(new Uint8Array(n).map((_, i) => (start + i) & 0xff));

for (const [name, suite] of [
  ['x25519', Suite.X25519_AES256GCM_SHA256],
  ['p256', Suite.P256_AES256GCM_SHA256],
] as const) {
  const [ie, re] = [await generateEphemeral(suite), await generateEphemeral(suite)];
  const vector = await buildVector(
    {
      suite,
      psk: filled(32, 0x00),
      // The fingerprints of the signaling examples' stub SDPs (test/vectors/build.ts).
      offerBinding: toHex(dtlsOfferBinding('sha-256 AA:BB')),
      channelBinding: toHex(dtlsChannelBinding('sha-256 AA:BB', 'sha-256 CC:DD')),
      initiator: {
        identity: initiator.exportPublic(),
        random: filled(32, 0x20),
        ephemeral: await exportEphemeral(ie),
      },
      responder: {
        identity: responder.exportPublic(),
        random: filled(32, 0x40),
        ephemeral: await exportEphemeral(re),
      },
    },
    (role, data) => (role === 'initiator' ? initiator : responder).sign(data),
  );
  const path = new URL(`../test/vectors/handshake-${name}.json`, import.meta.url);
  writeFileSync(path, `${JSON.stringify(vector, null, 2)}\n`);
  console.log(`wrote ${path.pathname}`);
}
