/**
 * Builds the protocol test vectors from fixed inputs. `npm run vectors` writes them to
 * test/vectors/handshake-*.json; test/unit/vectors.test.ts rebuilds them and compares every byte.
 * RSA-PSS signatures are randomized, so they are inputs here: the generator signs for real once, the
 * test replays the recorded signatures (and verifies them under the recorded public keys).
 */
import { PublicIdentity, type PublicIdentityJson } from '../../src/identity/index.js';
import { deriveShared } from '../../src/protocol/ecdh.js';
import {
  bindingHash,
  type Ephemeral,
  InitiatorHandshake,
  importEphemeral,
  parseClientHello,
  ResponderHandshake,
  Session,
  type Suite,
} from '../../src/protocol/index.js';
import {
  applicationSecrets,
  earlySecrets,
  handshakeSecrets,
  sha256,
  trafficKey,
} from '../../src/protocol/key-schedule.js';
import { fromHex, toBase64Url, toHex, utf8 } from '../../src/util/bytes.js';

export interface VectorInputs {
  suite: number;
  psk: string;
  /** offer_binding (§8): what the ClientHello's binding_hash covers. */
  offerBinding: string;
  /** channel_binding (§8): what the ServerHello's binding_hash covers. */
  channelBinding: string;
  initiator: { identity: PublicIdentityJson; random: string; ephemeral: JsonWebKey; signature?: string };
  responder: { identity: PublicIdentityJson; random: string; ephemeral: JsonWebKey; signature?: string };
}

export interface Vector {
  description: string;
  inputs: VectorInputs;
  keySchedule: Record<string, string>;
  handshake: Record<string, string>;
  /** The dial signal payloads (§8) that carry the handshake, for an offer and an answer with stub SDPs. */
  signaling: Record<string, unknown>;
  records: Record<string, string>;
}

/** Stub SDPs of the signaling examples: only their fingerprint lines matter to p2ptls (§8). */
const OFFER_SDP = 'v=0\r\na=fingerprint:sha-256 AA:BB\r\n';
const ANSWER_SDP = 'v=0\r\na=fingerprint:sha-256 CC:DD\r\n';
const DIAL_ID = 'AAECAwQFBgcICQoL';

type Signer = (role: 'initiator' | 'responder', data: Uint8Array) => Promise<Uint8Array>;

/** Records a session hands out, and a wait for the i-th (bounded: a vector that never completes fails). */
class Records {
  readonly list: Uint8Array[] = [];
  private readonly waiters = new Map<number, (r: Uint8Array) => void>();

  push(record: Uint8Array): void {
    this.list.push(record);
    this.waiters.get(this.list.length - 1)?.(record);
  }

  at(i: number): Promise<Uint8Array> {
    const ready = this.list[i];
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`record ${i} was never sent (waited 10 s)`)), 10_000);
      this.waiters.set(i, (r) => {
        clearTimeout(timer);
        this.waiters.delete(i);
        resolve(r);
      });
    });
  }
}

/** Reads the signature out of an Auth message body: type (1) ‖ u16 length ‖ signature ‖ finished. */
function signatureOf(authPlaintext: Uint8Array): Uint8Array {
  const len = (authPlaintext[1]! << 8) | authPlaintext[2]!;
  return authPlaintext.subarray(3, 3 + len);
}

export async function buildVector(inputs: VectorInputs, sign: Signer): Promise<Vector> {
  const suite = inputs.suite as Suite;
  const psk = fromHex(inputs.psk);
  const offerBinding = fromHex(inputs.offerBinding);
  const channelBinding = fromHex(inputs.channelBinding);
  const iPub = await PublicIdentity.import(inputs.initiator.identity);
  const rPub = await PublicIdentity.import(inputs.responder.identity);
  const iEph: Ephemeral = await importEphemeral(suite, inputs.initiator.ephemeral);
  const rEph: Ephemeral = await importEphemeral(suite, inputs.responder.ephemeral);
  const signatures: Record<string, Uint8Array> = {};
  const signer = (role: 'initiator' | 'responder', peerId: string) => ({
    peerId,
    sign: async (data: Uint8Array) => {
      const s = await sign(role, data);
      signatures[role] = s;
      return s;
    },
  });

  const init = await InitiatorHandshake.start({
    identity: signer('initiator', iPub.peerId),
    peer: rPub,
    psk,
    suite,
    offerBinding,
    channelBinding,
    deterministic: { random: fromHex(inputs.initiator.random), ephemeral: iEph },
  });
  const resp = await ResponderHandshake.accept(parseClientHello(init.hello), {
    identity: signer('responder', rPub.peerId),
    peer: iPub,
    psk,
    offerBinding,
    channelBinding,
    deterministic: { random: fromHex(inputs.responder.random), ephemeral: rEph },
  });
  const [sh, rAuth] = resp.records as [Uint8Array, Uint8Array];
  await init.receive(sh);
  const { records, result } = await init.receive(rAuth);
  const iAuth = records[0]!;
  const rResult = await resp.receive(iAuth);

  // Key schedule, recomputed step by step so an implementer can check each intermediate value.
  const { early, binderKey } = await earlySecrets(psk);
  const ecdh = await deriveShared(suite, iEph, rEph.share);
  const helloHash = await sha256(init.hello.subarray(2), sh.subarray(2));
  const hs = await handshakeSecrets(early, ecdh, helloHash);
  const app = await applicationSecrets(hs.hs, result!.transcriptHash);
  const iTcpKey = await trafficKey(app.initiatorTcp);

  // Application records: fixed content, small records so fragmentation shows.
  const sent = new Records();
  const out = sent.list;
  const dgrams: Uint8Array[] = [];
  const session = new Session(
    result!,
    {
      reliable: (r) => sent.push(r),
      datagram: (d) => {
        dgrams.push(d);
        return true;
      },
    },
    { recordSize: 64 },
  );
  const answered = new Records();
  const rxOut = answered.list;
  const rx = new Session(
    rResult,
    { reliable: (r) => answered.push(r), datagram: () => true },
    { recordSize: 64, receiveWindow: 1024 * 1024 },
  );
  // The WINDOW right after the handshake (§5.5): the responder opens its window beyond 256 KiB.
  rx.announceWindow();
  await session.send('hello');
  await session.send('a', 'bc');
  await session.send(new Uint8Array(150).map((_, i) => i));
  await session.ping(utf8('ping1234'));
  await session.updateKeys();
  await session.send('after key update');
  await session.sendDatagram('datagram', 1_700_000_000_000);
  await session.close(0, 'done');
  // The receiving side must accept all of it, or the vector is wrong: it answers the ping, the key
  // update and the CLOSE (with its own CLOSE and a CLOSE_ACK, §5.3).
  const dg = await rx.receiveDatagram(dgrams[0]!);
  if (!dg.ok) throw new Error(`datagram vector does not open (${dg.reason})`);
  // Records are sealed asynchronously (WebCrypto): each side takes the other's as they come out, as many
  // as the vector lists below. (Taking only those already out raced the sealing: on a loaded CI machine
  // the last of them was not out yet.)
  for (let i = 0; i < 9; i++) await rx.receive(await sent.at(i));
  if (rx.state !== 'closed') throw new Error('close vector not applied');
  for (let i = 0; i < 5; i++) await session.receive(await answered.at(i));
  if (session.state !== 'closed') throw new Error('close reply vector not applied');
  const acked = await rx.receive(await sent.at(9));
  if (acked[0]?.type !== 'close-ack') throw new Error('close-ack vector not applied');

  return {
    description: `p2ptls v4 handshake and records, suite 0x${suite.toString(16).padStart(4, '0')}`,
    inputs: {
      ...inputs,
      initiator: { ...inputs.initiator, signature: toHex(signatures.initiator!) },
      responder: { ...inputs.responder, signature: toHex(signatures.responder!) },
    },
    keySchedule: {
      early_secret: toHex(early),
      binder_key: toHex(binderKey),
      ecdh_shared: toHex(ecdh),
      hello_hash: toHex(helloHash),
      handshake_secret: toHex(hs.hs),
      i_hs_traffic: toHex(hs.initiator),
      r_hs_traffic: toHex(hs.responder),
      transcript_hash: toHex(result!.transcriptHash),
      i_tcp_traffic: toHex(app.initiatorTcp),
      r_tcp_traffic: toHex(app.responderTcp),
      i_sllp_traffic: toHex(app.initiatorSllp),
      r_sllp_traffic: toHex(app.responderSllp),
      exporter: toHex(app.exporter),
      i_tcp_key: toHex(iTcpKey.key),
      i_tcp_iv: toHex(iTcpKey.iv),
    },
    handshake: {
      offer_binding_hash: toHex(await bindingHash(offerBinding)),
      channel_binding_hash: toHex(await bindingHash(channelBinding)),
      client_hello: toHex(init.hello),
      server_hello: toHex(sh),
      responder_auth: toHex(rAuth),
      initiator_auth: toHex(iAuth),
    },
    signaling: {
      offer: {
        p2ptls: 2,
        kind: 'signal',
        dial: DIAL_ID,
        signal: { type: 'offer', sdp: OFFER_SDP },
        handshake: [toBase64Url(init.hello)],
      },
      answer: {
        p2ptls: 2,
        kind: 'signal',
        dial: DIAL_ID,
        signal: { type: 'answer', sdp: ANSWER_SDP },
        handshake: [toBase64Url(sh), toBase64Url(rAuth)],
      },
    },
    records: {
      'data "hello" (seq 0)': toHex(out[0]!),
      'data batch ["a","bc"] (seq 1)': toHex(out[1]!),
      'data 150 bytes 00..95, FIRST (seq 2)': toHex(out[2]!),
      'data 150 bytes, middle (seq 3)': toHex(out[3]!),
      'data 150 bytes, LAST (seq 4)': toHex(out[4]!),
      'control ping "ping1234" (seq 5)': toHex(out[5]!),
      'key update, request_update=1 (seq 6)': toHex(out[6]!),
      'data "after key update" (generation 1, seq 0)': toHex(out[7]!),
      'control close 0 "done" (generation 1, seq 1)': toHex(out[8]!),
      'control close_ack (generation 1, seq 2)': toHex(out[9]!),
      'responder: control window 1048576 (seq 0)': toHex(rxOut[0]!),
      'responder: control pong "ping1234" (seq 1)': toHex(rxOut[1]!),
      'responder: key update, request_update=0 (seq 2)': toHex(rxOut[2]!),
      'responder: control close 0 "done", the reply (generation 1, seq 0)': toHex(rxOut[3]!),
      'responder: control close_ack (generation 1, seq 1)': toHex(rxOut[4]!),
      'datagram "datagram" sentAt 1700000000000 (epoch 1, seq 0)': toHex(dgrams[0]!),
    },
  };
}

/** Signer for the test: returns the recorded signature for each role. */
export function replaySigner(inputs: VectorInputs): Signer {
  return async (role) => fromHex(inputs[role].signature ?? '');
}

export { signatureOf };
