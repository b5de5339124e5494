// A man in the middle of DTLS (what a lying signaling server or network could do: terminate each side's
// DTLS with its own certificate and forward the data channels) is caught by the channel binding. Built
// at the transport level in-process: A ↔ M1 and M2 ↔ B are real WebRTC links on loopback, M forwards
// every raw data-channel message between M1 and M2, and A and B run the p2ptls handshake over that with
// the channel binding computed exactly as the host does.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Identity } from '../../src/identity/identity.js';
import {
  type HandshakeResult,
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
} from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { dtlsChannelBinding, dtlsOfferBinding } from '../../src/transport/channel-binding.js';
import type { PeerLink } from '../../src/transport/peer-link.js';
import {
  type Backend,
  type Env,
  loadRtc,
  openLinkPair,
  startEnv,
  withCode,
  within,
} from '../helpers/hosts.js';

/** Reliable records of a link, read one at a time. */
function reader(link: PeerLink) {
  const items: Uint8Array[] = [];
  const waiting: { resolve: (r: Uint8Array) => void; reject: (e: Error) => void }[] = [];
  link.on('reliable', (r) => {
    const w = waiting.shift();
    if (w) w.resolve(r);
    else items.push(r);
  });
  link.on('close', () => {
    for (const w of waiting.splice(0)) w.reject(new Error('link closed'));
  });
  return (): Promise<Uint8Array> =>
    within(
      new Promise<Uint8Array>((resolve, reject) => {
        const r = items.shift();
        if (r) resolve(r);
        else waiting.push({ resolve, reject });
      }),
      10_000,
      'handshake record',
    );
}

/** Two real links wired to each other in-process, open; kept in `links` for closing at the end. */
async function linkPair(backend: Backend, links: PeerLink[]): Promise<[PeerLink, PeerLink]> {
  const pair = await openLinkPair(await loadRtc(backend));
  links.push(...pair);
  return pair;
}

describe('channel binding against a man in the middle of DTLS', () => {
  let env: Env;
  let alice: Identity;
  let bob: Identity;
  let psk: Uint8Array;
  const links: PeerLink[] = [];
  before(async () => {
    env = await startEnv(2);
    [alice, bob] = env.ids as [Identity, Identity];
    psk = env.psk(alice, bob);
  });
  after(async () => {
    for (const l of links) l.close();
    await env?.close();
  });

  /** A's and B's handshakes over (initiator link at A, responder link at B), binding as src/host does. */
  async function handshake(atA: PeerLink, atB: PeerLink): Promise<[HandshakeResult, HandshakeResult]> {
    const readA = reader(atA);
    const readB = reader(atB);
    const fpA = atA.fingerprints();
    const init = await InitiatorHandshake.start({
      identity: alice,
      peer: bob.publicIdentity,
      psk,
      offerBinding: dtlsOfferBinding(fpA.local),
      channelBinding: dtlsChannelBinding(fpA.local, fpA.remote),
      aead: nodeCryptoAead,
    });
    atA.sendReliable(init.hello);
    const responder = (async () => {
      const hello = parseClientHello(await readB());
      assert.equal(hello.initiatorId, alice.peerId);
      const fpB = atB.fingerprints();
      const resp = await ResponderHandshake.accept(hello, {
        identity: bob,
        peer: alice.publicIdentity,
        psk,
        offerBinding: dtlsOfferBinding(fpB.remote),
        channelBinding: dtlsChannelBinding(fpB.remote, fpB.local),
        aead: nodeCryptoAead,
      });
      for (const r of resp.records) atB.sendReliable(r);
      return resp.receive(await readB());
    })();
    const initiator = (async () => {
      for (;;) {
        const r = await init.receive(await readA());
        for (const out of r.records) atA.sendReliable(out);
        if (r.result) return r.result;
      }
    })();
    // If the responder fails, the initiator waits for a record that never comes: report the responder's
    // failure, and keep the initiator's later timeout from surfacing as an unhandled rejection.
    initiator.catch(() => {});
    const rb = await responder;
    const ra = await initiator;
    return [ra, rb];
  }

  for (const backend of ['wrtc', 'node-datachannel'] as const) {
    it(`${backend}: direct link (control): the handshake succeeds with matching bindings`, async () => {
      const [atA, atB] = await linkPair(backend, links);
      const fa = atA.fingerprints();
      const fb = atB.fingerprints();
      assert.equal(fa.local, fb.remote);
      assert.equal(fa.remote, fb.local);
      const [ra, rb] = await handshake(atA, atB);
      assert.deepEqual(ra.transcriptHash, rb.transcriptHash);
      assert.equal(ra.remotePeerId, bob.peerId);
      assert.equal(rb.remotePeerId, alice.peerId);
      atA.close();
      atB.close();
    });

    it(`${backend}: relayed through M (own DTLS on each side) → channel_binding_mismatch`, async () => {
      const [atA, m1] = await linkPair(backend, links);
      const [m2, atB] = await linkPair(backend, links);
      // M forwards every raw data-channel message both ways, on both channels.
      let forwarded = 0;
      m1.on('reliable', (r) => {
        forwarded++;
        m2.sendReliable(r);
      });
      m2.on('reliable', (r) => {
        forwarded++;
        m1.sendReliable(r);
      });
      m1.on('datagram', (d) => m2.sendDatagram(d));
      m2.on('datagram', (d) => m1.sendDatagram(d));
      // Each side sees M's certificate as the remote one.
      assert.notEqual(atA.fingerprints().remote, atB.fingerprints().local);
      assert.equal(atA.fingerprints().remote, m1.fingerprints().local);
      await assert.rejects(handshake(atA, atB), withCode('channel_binding_mismatch'));
      assert.equal(forwarded, 1, 'the ClientHello went through M, and B refused it (offer fingerprint)');
      // The live DTLS certificate is M's, as the SDP said: where the stack reports it, it is what §8
      // compares.
      const live = await atA.remoteCertificate();
      if (backend === 'wrtc') assert.equal(live, m1.fingerprints().local);
      else assert.equal(live, undefined);
      for (const l of [atA, m1, m2, atB]) l.close();
    });

    it(`${backend}: M swaps only the answer's fingerprint → channel_binding_mismatch at A, no InitiatorAuth`, async () => {
      const [atA, m1] = await linkPair(backend, links);
      const [m2, atB] = await linkPair(backend, links);
      const toB: Uint8Array[] = [];
      m1.on('reliable', (r) => {
        toB.push(r);
        m2.sendReliable(r);
      });
      m2.on('reliable', (r) => m1.sendReliable(r));
      const readA = reader(atA);
      const readB = reader(atB);
      const fpA = atA.fingerprints();
      const init = await InitiatorHandshake.start({
        identity: alice,
        peer: bob.publicIdentity,
        psk,
        offerBinding: dtlsOfferBinding(fpA.local),
        aead: nodeCryptoAead,
      });
      atA.sendReliable(init.hello);
      // B saw A's own offer (its fingerprint intact) but answered into M's DTLS.
      const resp = await ResponderHandshake.accept(parseClientHello(await readB()), {
        identity: bob,
        peer: alice.publicIdentity,
        psk,
        offerBinding: dtlsOfferBinding(fpA.local),
        channelBinding: dtlsChannelBinding(fpA.local, atB.fingerprints().local),
        aead: nodeCryptoAead,
      });
      for (const r of resp.records) atB.sendReliable(r);
      await assert.rejects(
        init.receive(await readA(), dtlsChannelBinding(fpA.local, fpA.remote)),
        withCode('channel_binding_mismatch'),
      );
      assert.equal(toB.length, 1, 'only the ClientHello reached B: A sent no InitiatorAuth');
      for (const l of [atA, m1, m2, atB]) l.close();
    });
  }
});
