// The WebCrypto provider joins a record's or a datagram's pieces into one buffer it reuses for the next
// seal (aead.ts, JoinBuffer). That is only sound because WebCrypto copies its input before encrypt()
// returns; these tests check that runtime property, and that records and datagrams sealed back to back
// (many in flight at once, each joined into the same buffer) all arrive intact, and that a datagram's
// payload buffer may be reused as soon as its send call has returned, as before the join buffer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { webCryptoAead } from '../../src/protocol/index.js';
import { connectInMemory, pumpReliable } from '../../src/testing/in-memory.js';

const ids = Promise.all([Identity.generate(), Identity.generate()]);
const psk = crypto.getRandomValues(new Uint8Array(32));
const fill = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('WebCrypto join buffer', () => {
  it('WebCrypto takes its copy of the plaintext before encrypt() returns', async () => {
    const key = await crypto.subtle.importKey('raw', new Uint8Array(32), 'AES-GCM', false, [
      'encrypt',
      'decrypt',
    ]);
    const iv = new Uint8Array(12);
    const plaintext = fill(16 * 1024, 7);
    const buffer = plaintext.slice();
    const sealing = crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, buffer);
    buffer.fill(0);
    const opened = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, await sealing));
    assert.deepEqual(opened, plaintext);
  });

  it('records sealed concurrently from pieces (batches, first fragments) arrive intact', async () => {
    const [a, b] = await ids;
    const recordSize = 1024;
    const { initiator, responder } = await connectInMemory({
      initiator: a,
      responder: b,
      psk,
      session: { aead: webCryptoAead, recordSize },
    });
    // Every send call below starts with a record of several pieces: a batch of small messages, or a
    // large message's first fragment behind its length. None is awaited before the next is sealed.
    const sent: Uint8Array[] = [];
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const batch = [fill(10 + i, i), fill(200, i + 1), fill(3 * recordSize + i, i + 2)];
      sent.push(...batch);
      sends.push(initiator.session.send(...batch));
    }
    await Promise.all(sends);
    const got = (await pumpReliable(initiator, responder)).flatMap((e) =>
      e.type === 'message' ? [e.data] : [],
    );
    assert.equal(got.length, sent.length);
    for (const [i, m] of got.entries()) assert.deepEqual(m, sent[i], `message ${i}`);
  });

  for (const rotating of [false, true]) {
    it(`datagrams sealed back to back arrive intact${rotating ? ', across epochs whose key is still being derived' : ''}`, async () => {
      const [a, b] = await ids;
      const { initiator, responder } = await connectInMemory({
        initiator: a,
        responder: b,
        psk,
        // A new epoch every 3 datagrams: the next ones are sealed once its key is derived.
        session: { aead: webCryptoAead, ...(rotating ? { maxRecordsPerKey: 3 } : {}) },
      });
      // The first datagram waits for the epoch's key; the rest of its epoch is sealed at once.
      const first = fill(1000, 99);
      await initiator.session.sendDatagram(first, 1_700_000_000_000);
      const sent: Uint8Array[] = [first];
      const sends: Promise<number>[] = [];
      const buffer = new Uint8Array(1000);
      for (let i = 0; i < 30; i++) {
        const payload = fill(1000, i);
        sent.push(payload);
        // One buffer for every datagram, overwritten as soon as the send call returns.
        buffer.set(payload);
        sends.push(initiator.session.sendDatagram(buffer, 1_700_000_000_000 + i));
      }
      buffer.fill(0xee);
      await Promise.all(sends);
      // One at a time, so the receiver moves to each new epoch before the next (it accepts only a few ahead).
      const got: Uint8Array[] = [];
      for (const d of initiator.sentDatagrams.splice(0)) {
        const r = await responder.session.receiveDatagram(d);
        if (r.ok && r.kind === 'data') got.push(r.data);
      }
      assert.equal(got.length, sent.length);
      for (const [i, m] of got.entries()) assert.deepEqual(m, sent[i], `datagram ${i}`);
    });
  }
});
