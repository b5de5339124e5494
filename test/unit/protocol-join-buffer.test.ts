// The WebCrypto provider joins a record's or a datagram's pieces into one buffer it reuses for the next
// seal (aead.ts, JoinBuffer). That is only sound because WebCrypto copies its input before encrypt()
// returns; these tests check that runtime property, and that records and datagrams sealed back to back
// (many in flight at once, each joined into the same buffer) all arrive intact, and that a datagram's
// payload buffer may be reused as soon as its send call has returned, as before the join buffer. For an
// output that copies (a data channel's send), datagrams are joined to their headers in one buffer of the
// session's instead of a new one each (Session.joinParts); node:crypto seals them straight into that
// buffer (DatagramWriter's copyingOutput), and the same datagrams must arrive intact that way too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity } from '../../src/identity/index.js';
import { type AeadProvider, webCryptoAead } from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { connectInMemory, pumpReliable } from '../../src/testing/in-memory.js';

const ids = Promise.all([Identity.generate(), Identity.generate()]);
const psk = crypto.getRandomValues(new Uint8Array(32));
const fill = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe("join buffers: WebCrypto's, and the session's for an output that copies", () => {
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

  for (const aead of [webCryptoAead, nodeCryptoAead] as AeadProvider[])
    for (const [rotating, copies] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ]) {
      it(`${aead.name}: datagrams sealed back to back arrive intact${rotating ? ', across epochs whose key is still being derived' : ''}${copies ? ', through an output that copies' : ''}`, async () => {
        const [a, b] = await ids;
        const { initiator, responder } = await connectInMemory({
          initiator: a,
          responder: b,
          psk,
          copies,
          // A new epoch every 3 datagrams: the next ones are sealed once its key is derived.
          session: { aead, ...(rotating ? { maxRecordsPerKey: 3 } : {}) },
        });
        // The first datagram waits for the epoch's key; the rest of its epoch is sealed at once.
        const first = fill(1000, 99);
        await initiator.session.sendDatagram(first, 1_700_000_000_000);
        const sent: Uint8Array[] = [first];
        const sends: Promise<number>[] = [];
        // What the output is handed: one buffer of the session's for all of them when it copies.
        const session = initiator.session as unknown as { output: { datagram(d: Uint8Array): boolean } };
        const output = session.output.datagram.bind(session.output);
        const buffers = new Set<ArrayBufferLike>();
        session.output.datagram = (d) => {
          buffers.add(d.buffer);
          return output(d);
        };
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
        // In the order they were sealed (epoch, then sequence number: header bytes 2–9, §6), as they may
        // have been handed over in another order.
        const byHeader = (x: Uint8Array, y: Uint8Array) =>
          Buffer.compare(x.subarray(2, 10), y.subarray(2, 10));
        for (const d of initiator.sentDatagrams.splice(0).sort(byHeader)) {
          const r = await responder.session.receiveDatagram(d);
          if (r.ok && r.kind === 'data') got.push(r.data);
        }
        assert.equal(got.length, sent.length);
        // Datagrams are unordered: each seals concurrently and goes out when its seal is done.
        const hex = (ms: Uint8Array[]) => ms.map((m) => Buffer.from(m).toString('hex')).sort();
        assert.deepEqual(hex(got), hex(sent));
        if (!copies) assert.equal(buffers.size, 30, 'a buffer per datagram');
        // node:crypto seals within the call only once the epoch's key is derived: while rotating, most of
        // these wait for a key and are sealed into buffers of their own.
        else if (!(aead.sync && rotating))
          assert.equal(buffers.size, 1, `${buffers.size} buffers for 30 datagrams`);
      });
    }
});
