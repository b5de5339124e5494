// Records sealed into one buffer of the session's (SessionOutput.copiesReliable), and batches and first
// fragments sealed from their pieces: the bytes on the wire are the same, nothing is corrupted when the
// output keeps what it was given, and the buffer really is reused when the output copies.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { type AeadProvider, type Session, webCryptoAead } from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { connectInMemory, pumpReliable } from '../../src/testing/in-memory.js';

const ids = Promise.all([Identity.generate(), Identity.generate()]);
const psk = crypto.getRandomValues(new Uint8Array(32));

/** Small messages (one batch), a large one (fragments) and one of exactly a record. */
function messages(recordSize: number): Uint8Array[] {
  const fill = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
  return [fill(10, 1), fill(300, 2), fill(5 * recordSize + 123, 3), fill(recordSize, 4), fill(7, 5)];
}

async function sendAll(tx: Session, msgs: Uint8Array[]): Promise<void> {
  // Two calls: the first three go out together (a batch, then fragments), the last two in a second call.
  await tx.send(...msgs.slice(0, 3));
  await tx.send(...msgs.slice(3));
}

describe('record buffer and sealing from pieces', () => {
  for (const [aead, copies] of [
    [nodeCryptoAead, true],
    [nodeCryptoAead, false],
    [webCryptoAead, true],
    [webCryptoAead, false],
  ] as [AeadProvider, boolean][]) {
    it(`${aead.name}, ${copies ? 'copying' : 'keeping'} output: every message arrives intact`, async () => {
      const [a, b] = await ids;
      const recordSize = 1024;
      const { initiator, responder } = await connectInMemory({
        initiator: a,
        responder: b,
        psk,
        copies,
        session: { aead, recordSize },
      });
      const sent = messages(recordSize);
      await sendAll(initiator.session, sent);
      const got = (await pumpReliable(initiator, responder)).flatMap((e) =>
        e.type === 'message' ? [e.data] : [],
      );
      assert.deepEqual(
        got.map((m) => Buffer.from(m).toString('hex')),
        sent.map((m) => Buffer.from(m).toString('hex')),
      );
    });
  }

  // node:crypto only: a WebCrypto record is the cipher's own output, a new buffer each whatever the output
  // does with it (a record has no header outside its encryption to join it to, PROTOCOL.md §5.1).
  it('node:crypto: a copying output gets every record in the same buffer; a keeping one gets a fresh one each', async () => {
    const aead = nodeCryptoAead;
    const [a, b] = await ids;
    const seen = { copies: new Set<ArrayBufferLike>(), keeps: new Set<ArrayBufferLike>() };
    let records = 0;
    for (const copies of [true, false]) {
      const { initiator } = await connectInMemory({
        initiator: a,
        responder: b,
        psk,
        copies,
        session: { aead, recordSize: 1024 },
      });
      // Once the traffic key is derived, node:crypto seals records within the send call, into the
      // session's buffer when the output copies.
      await initiator.session.send(new Uint8Array(1));
      const session = initiator.session as unknown as { output: { reliable(r: Uint8Array): void } };
      const reliable = session.output.reliable.bind(session.output);
      session.output.reliable = (r) => {
        (copies ? seen.copies : seen.keeps).add(r.buffer);
        if (copies) records++;
        reliable(r);
      };
      await sendAll(initiator.session, messages(1024));
    }
    // The buffer grows once, from the first record (a batch of two small messages) to a full record.
    assert.ok(records >= 8, `${records} records`);
    assert.ok(seen.copies.size <= 2, `${seen.copies.size} buffers for ${records} records`);
    assert.equal(seen.keeps.size, records, 'a buffer per record');
  });
});
