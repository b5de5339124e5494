/**
 * The p2ptls handshake (PROTOCOL.md §3): PSK binder → ECDHE → RSA-PSS signatures and Finished MACs of
 * both peers. Pure state machines: records in, records and keys out. Over WebRTC the first three
 * messages ride in the signaling exchange (§8): ClientHello with the offer, ServerHello and
 * ResponderAuth with the answer; InitiatorAuth is the first record on the data channel.
 *
 *   Initiator                                   Responder
 *   ClientHello (+ PSK binder)         -->                       (checked before any allocation)
 *                                      <--      ServerHello (+ channel binding)
 *                                      <--      {ResponderAuth: signature, Finished}
 *   {InitiatorAuth: signature, Finished} -->
 *   [application records]              <->      [application records]
 */
import { fail } from '../errors.js';
import { type PeerId, peerIdFromBytes, peerIdToBytes } from '../identity/peer-id.js';
import { concat, equalBytes, utf8 } from '../util/bytes.js';
import { type AeadKey, type AeadProvider, webCryptoAead } from './aead.js';
import {
  DEFAULT_SUITE,
  HANDSHAKE_HEADER_LEN,
  HASH_LEN,
  HandshakeType,
  RANDOM_LEN,
  RecordType,
  SUPPORTED_SUITES,
  type Suite,
  TAG_LEN,
} from './constants.js';
import { deriveShared, type Ephemeral, type KeyExchange, webCryptoKeyExchange } from './ecdh.js';
import {
  type ClientHello,
  decodeAuth,
  decodeClientHello,
  decodeServerHello,
  encodeAuthPrefix,
  encodeClientHelloPrefix,
  encodeServerHello,
} from './handshake-messages.js';
import {
  type ApplicationSecrets,
  applicationSecrets,
  earlySecrets,
  finishedMac,
  handshakeSecrets,
  hmac,
  recordNonce,
  sha256,
  trafficKey,
} from './key-schedule.js';

/** Our side's signing identity. {@link Identity} satisfies it. */
export interface LocalSigner {
  readonly peerId: PeerId;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** The peer's pinned public identity, from the store. {@link PublicIdentity} satisfies it. */
export interface RemotePeer {
  readonly peerId: PeerId;
  verify(signature: Uint8Array, data: Uint8Array): Promise<boolean>;
}

export interface HandshakeOptions {
  identity: LocalSigner;
  peer: RemotePeer;
  /** The pair's 32-byte pre-shared key, from pairing. */
  psk: Uint8Array;
  /**
   * What the ClientHello's binding_hash covers: what the initiator's transport showed before the responder
   * answered, over WebRTC its own DTLS fingerprint (the offer's). The responder compares it with the
   * fingerprint of the offer it received before it does anything else (`channel_binding_mismatch`).
   * The initiator may pass a promise: its fingerprint exists only once its offer does, and its key
   * generation need not wait for that.
   */
  offerBinding?: Uint8Array | PromiseLike<Uint8Array>;
  /**
   * What the ServerHello's binding_hash covers: both DTLS fingerprints (PROTOCOL.md §3.2, §8). The
   * responder puts its view in the ServerHello; the initiator compares its own (given here, or to
   * `receive` with the ServerHello once it knows the answer) and aborts with `channel_binding_mismatch`.
   */
  channelBinding?: Uint8Array;
  /** Initiator: the suite to use. Responder: ignored (see `suites`). */
  suite?: Suite;
  /** Responder: suites it accepts. Default: all supported. */
  suites?: readonly Suite[];
  /** Fixed inputs for reproducible test vectors. Never set these in real use. */
  deterministic?: { random: Uint8Array; ephemeral: Ephemeral };
  /** Only the encrypted handshake message uses it; the session gets its own. */
  aead?: AeadProvider;
  /** Where ECDHE runs (default WebCrypto). */
  keyExchange?: KeyExchange;
}

export type Role = 'initiator' | 'responder';

/** What a completed handshake hands to the session. */
export interface HandshakeResult {
  role: Role;
  localPeerId: PeerId;
  remotePeerId: PeerId;
  suite: Suite;
  secrets: ApplicationSecrets;
  /** SHA-256 of the whole handshake transcript; identical on both sides. */
  transcriptHash: Uint8Array;
}

const SIG_CONTEXT_RESPONDER = utf8('p2ptls1 responder signature\0');
const SIG_CONTEXT_INITIATOR = utf8('p2ptls1 initiator signature\0');
const BINDING_CONTEXT = utf8('p2ptls1 channel binding\0');

/** Handshake record flag: the body is encrypted under the sender's handshake traffic key. */
const ENCRYPTED = 0x01;

function plainRecord(body: Uint8Array): Uint8Array {
  return concat(new Uint8Array([RecordType.HANDSHAKE, 0]), body);
}

function unwrapRecord(record: Uint8Array, encrypted: boolean): Uint8Array {
  if (record.length < HANDSHAKE_HEADER_LEN) throw fail('malformed', 'handshake record truncated');
  if (record[0] !== RecordType.HANDSHAKE) {
    throw fail('unexpected_message', `expected a handshake record, got type ${record[0]}`);
  }
  if (record[1] !== (encrypted ? ENCRYPTED : 0)) throw fail('malformed', 'unexpected handshake record flags');
  return record.subarray(HANDSHAKE_HEADER_LEN);
}

/** Each side sends exactly one encrypted handshake record, so its sequence number is always 0. */
async function sealHandshake(aead: AeadProvider, secret: Uint8Array, body: Uint8Array) {
  const { key, iv } = await trafficKey(secret);
  const header = new Uint8Array([RecordType.HANDSHAKE, ENCRYPTED]);
  return concat(header, await aead.seal(await aead.importKey(key), recordNonce(iv, 0), header, body));
}

/** The key and nonce that open a peer's encrypted handshake record: derivable before it arrives. */
async function handshakeOpener(aead: AeadProvider, secret: Uint8Array) {
  const { key, iv } = await trafficKey(secret);
  return { key: await aead.importKey(key), nonce: recordNonce(iv, 0) };
}

async function openHandshake(
  aead: AeadProvider,
  opener: Promise<{ key: AeadKey; nonce: Uint8Array }>,
  record: Uint8Array,
) {
  const body = unwrapRecord(record, true);
  if (body.length < TAG_LEN) throw fail('malformed', 'encrypted handshake record truncated');
  const { key, nonce } = await opener;
  const pt = await aead.open(key, nonce, record.subarray(0, 2), body);
  if (!pt) throw fail('bad_record_mac', 'encrypted handshake message failed authentication');
  return pt;
}

/** SHA-256 of the channel binding with its context (PROTOCOL.md §3.2). */
export function bindingHash(channelBinding: Uint8Array | undefined): Promise<Uint8Array> {
  return sha256(BINDING_CONTEXT, channelBinding ?? new Uint8Array(0));
}

function keyExchangeOf(options: HandshakeOptions): KeyExchange {
  return options.keyExchange ?? webCryptoKeyExchange;
}

function freshInputs(options: HandshakeOptions, suite: Suite) {
  if (options.deterministic) return Promise.resolve(options.deterministic);
  return keyExchangeOf(options)
    .generate(suite)
    .then((ephemeral) => ({
      random: crypto.getRandomValues(new Uint8Array(RANDOM_LEN)),
      ephemeral,
    }));
}

/**
 * Whose dial wins when two peers dial each other at once: the one with the lower peerId (as bytes)
 * stays initiator; the other drops its own attempt and answers. Both sides compute the same answer.
 */
export function glareWinner(a: PeerId, b: PeerId): PeerId {
  const x = peerIdToBytes(a);
  const y = peerIdToBytes(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? a : b;
  return a;
}

/** The initiator's state machine. */
export class InitiatorHandshake {
  private serverHello: Uint8Array | null = null;
  private hs: Awaited<ReturnType<typeof handshakeSecrets>> | null = null;
  private done = false;

  private constructor(
    private readonly options: HandshakeOptions,
    private readonly suite: Suite,
    private readonly ephemeral: Ephemeral,
    private readonly early: Uint8Array,
    /** The ClientHello record to send. */
    readonly hello: Uint8Array,
    private readonly helloBody: Uint8Array,
  ) {}

  static async start(options: HandshakeOptions): Promise<InitiatorHandshake> {
    const suite = options.suite ?? DEFAULT_SUITE;
    if (!SUPPORTED_SUITES.includes(suite)) throw fail('invalid_argument', 'unsupported suite');
    const [{ random, ephemeral }, { early, binderKey }, offerBinding] = await Promise.all([
      freshInputs(options, suite),
      earlySecrets(options.psk),
      options.offerBinding,
    ]);
    const prefix = encodeClientHelloPrefix({
      suite,
      initiatorId: peerIdToBytes(options.identity.peerId),
      responderId: peerIdToBytes(options.peer.peerId),
      random,
      keyShare: ephemeral.share,
      bindingHash: await bindingHash(offerBinding),
    });
    const binder = await hmac(binderKey, await sha256(prefix));
    const body = concat(prefix, binder);
    return new InitiatorHandshake(options, suite, ephemeral, early, plainRecord(body), body);
  }

  /**
   * Feeds one record from the responder. After the ServerHello nothing is returned; after the
   * ResponderAuth, the InitiatorAuth record to send and the session secrets. `channelBinding` (with the
   * ServerHello) is the initiator's view of both fingerprints, when it was not known at `start`.
   */
  async receive(
    record: Uint8Array,
    channelBinding = this.options.channelBinding,
  ): Promise<{ records: Uint8Array[]; result?: HandshakeResult }> {
    if (this.done) throw fail('unexpected_message', 'handshake already finished');
    if (!this.serverHello) {
      const body = unwrapRecord(record, false);
      const sh = decodeServerHello(body);
      if (sh.suite !== this.suite) throw fail('unsupported_suite', 'responder answered with another suite');
      if (!equalBytes(await bindingHash(channelBinding), sh.bindingHash)) {
        throw fail(
          'channel_binding_mismatch',
          'the peers saw different DTLS fingerprints (SDP swapped in transit)',
        );
      }
      const ecdh = await deriveShared(this.suite, this.ephemeral, sh.keyShare, keyExchangeOf(this.options));
      this.hs = await handshakeSecrets(this.early, ecdh, await sha256(this.helloBody, body));
      this.serverHello = body;
      return { records: [] };
    }
    this.done = true;
    const { options } = this;
    const hs = this.hs!;
    const aead = options.aead ?? webCryptoAead;
    const rAuthBody = await openHandshake(aead, handshakeOpener(aead, hs.responder), record);
    const rAuth = decodeAuth(rAuthBody, HandshakeType.RESPONDER_AUTH);
    const signed = concat(SIG_CONTEXT_RESPONDER, await sha256(this.helloBody, this.serverHello));
    if (!(await options.peer.verify(rAuth.signature, signed))) {
      throw fail('bad_signature', `responder's signature does not verify under ${options.peer.peerId}'s key`);
    }
    const rPrefix = encodeAuthPrefix(HandshakeType.RESPONDER_AUTH, rAuth.signature);
    const rExpected = await finishedMac(
      hs.responder,
      await sha256(this.helloBody, this.serverHello, rPrefix),
    );
    if (!equalBytes(rExpected, rAuth.finished))
      throw fail('bad_finished', "responder's Finished MAC is wrong");

    const toSign = concat(SIG_CONTEXT_INITIATOR, await sha256(this.helloBody, this.serverHello, rAuthBody));
    const iPrefix = encodeAuthPrefix(HandshakeType.INITIATOR_AUTH, await options.identity.sign(toSign));
    const iFinished = await finishedMac(
      hs.initiator,
      await sha256(this.helloBody, this.serverHello, rAuthBody, iPrefix),
    );
    const iAuthBody = concat(iPrefix, iFinished);
    const transcriptHash = await sha256(this.helloBody, this.serverHello, rAuthBody, iAuthBody);
    return {
      records: [await sealHandshake(aead, hs.initiator, iAuthBody)],
      result: {
        role: 'initiator',
        localPeerId: options.identity.peerId,
        remotePeerId: options.peer.peerId,
        suite: this.suite,
        secrets: await applicationSecrets(hs.hs, transcriptHash),
        transcriptHash,
      },
    };
  }
}

/** A ClientHello as the responder first sees it: enough to look the initiator up, before any crypto. */
export interface IncomingHello {
  initiatorId: PeerId;
  responderId: PeerId;
  suite: Suite;
  /** @internal */
  readonly hello: ClientHello;
  /** @internal */
  readonly body: Uint8Array;
}

/** Parses a ClientHello record. Cheap: no crypto, so unknown peers cost nothing. */
export function parseClientHello(record: Uint8Array): IncomingHello {
  const body = unwrapRecord(record, false);
  const hello = decodeClientHello(body);
  return {
    initiatorId: peerIdFromBytes(hello.initiatorId),
    responderId: peerIdFromBytes(hello.responderId),
    suite: hello.suite,
    hello,
    body,
  };
}

/**
 * The responder's state machine: `check` (no RSA, no ECDH: cheap enough to run before anything is
 * allocated for a dial), `respond` (ServerHello and ResponderAuth), `receive` (InitiatorAuth).
 */
export class ResponderHandshake {
  private state: 'checked' | 'responded' | 'done' = 'checked';
  private serverHello: Uint8Array | undefined;
  private rAuthBody: Uint8Array | undefined;
  private hs: Awaited<ReturnType<typeof handshakeSecrets>> | undefined;
  /** Derived while the peer's InitiatorAuth is on its way: what opens it, and the hash its signature covers. */
  private expected: { opener: ReturnType<typeof handshakeOpener>; signed: Promise<Uint8Array> } | undefined;
  /** ServerHello and ResponderAuth records to send, in order (once `respond` has run). */
  records: Uint8Array[] = [];

  private constructor(
    private readonly options: HandshakeOptions,
    private readonly incoming: IncomingHello,
    private readonly early: Uint8Array,
  ) {}

  /**
   * Checks a ClientHello from `options.peer`, cheapest first (PROTOCOL.md §3.4): addressed to us, from
   * the peer the caller looked up, a suite we accept, the PSK binder (wrong PSK → `bad_binder`), the
   * offer binding. Two HMACs and two hashes: no RSA, no ECDH.
   */
  static async check(incoming: IncomingHello, options: HandshakeOptions): Promise<ResponderHandshake> {
    const ch = incoming.hello;
    if (incoming.responderId !== options.identity.peerId) {
      throw fail('wrong_peer', `hello is addressed to ${incoming.responderId}, not to us`);
    }
    if (incoming.initiatorId !== options.peer.peerId) {
      throw fail('unknown_peer', `hello is from ${incoming.initiatorId}, not from ${options.peer.peerId}`);
    }
    if (!(options.suites ?? SUPPORTED_SUITES).includes(ch.suite)) {
      throw fail('unsupported_suite', `suite 0x${ch.suite.toString(16)} is not accepted here`);
    }
    const { early, binderKey } = await earlySecrets(options.psk);
    const prefix = incoming.body.subarray(0, incoming.body.length - HASH_LEN);
    if (!equalBytes(await hmac(binderKey, await sha256(prefix)), ch.binder)) {
      throw fail(
        'bad_binder',
        `PSK binder does not verify: ${incoming.initiatorId} does not hold this pair's PSK`,
      );
    }
    if (!equalBytes(await bindingHash(await options.offerBinding), ch.bindingHash)) {
      throw fail(
        'channel_binding_mismatch',
        "the offer's DTLS fingerprint is not the initiator's (SDP swapped in transit)",
      );
    }
    return new ResponderHandshake(options, incoming, early);
  }

  /** `check`, then `respond` with `options.channelBinding`. */
  static async accept(incoming: IncomingHello, options: HandshakeOptions): Promise<ResponderHandshake> {
    const resp = await ResponderHandshake.check(incoming, options);
    await resp.respond();
    return resp;
  }

  /**
   * Fresh ephemeral key and random, ServerHello (carrying `channelBinding`, the responder's view of both
   * fingerprints) and ResponderAuth. Returns the two records (also in {@link records}). `channelBinding`
   * may be a promise: the key generation and ECDH run while it is not known yet (over WebRTC, while the
   * answer is being made).
   */
  async respond(
    channelBinding: Uint8Array | PromiseLike<Uint8Array> | undefined = this.options.channelBinding,
  ): Promise<Uint8Array[]> {
    if (this.state !== 'checked') throw fail('unexpected_message', 'ServerHello already sent');
    this.state = 'responded';
    const { options } = this;
    const ch = this.incoming.hello;
    const inputs = freshInputs(options, ch.suite);
    const shared = inputs.then(({ ephemeral }) =>
      deriveShared(ch.suite, ephemeral, ch.keyShare, keyExchangeOf(options)),
    );
    shared.catch(() => {});
    const [{ random, ephemeral }, binding] = await Promise.all([inputs, channelBinding]);
    const shBody = encodeServerHello({
      suite: ch.suite,
      random,
      keyShare: ephemeral.share,
      bindingHash: await bindingHash(binding),
    });
    const ecdh = await shared;
    const helloHash = await sha256(this.incoming.body, shBody);
    const hs = await handshakeSecrets(this.early, ecdh, helloHash);
    const signature = await options.identity.sign(concat(SIG_CONTEXT_RESPONDER, helloHash));
    const rPrefix = encodeAuthPrefix(HandshakeType.RESPONDER_AUTH, signature);
    const rFinished = await finishedMac(hs.responder, await sha256(this.incoming.body, shBody, rPrefix));
    const rAuthBody = concat(rPrefix, rFinished);
    const aead = options.aead ?? webCryptoAead;
    this.serverHello = shBody;
    this.rAuthBody = rAuthBody;
    this.hs = hs;
    this.records = [plainRecord(shBody), await sealHandshake(aead, hs.responder, rAuthBody)];
    this.expected = {
      opener: handshakeOpener(aead, hs.initiator),
      signed: sha256(this.incoming.body, shBody, rAuthBody),
    };
    this.expected.opener.catch(() => {});
    this.expected.signed.catch(() => {});
    return this.records;
  }

  /** Feeds the InitiatorAuth record; returns the session secrets once the initiator is authenticated. */
  async receive(record: Uint8Array): Promise<HandshakeResult> {
    if (this.state === 'done') throw fail('unexpected_message', 'handshake already finished');
    if (this.state !== 'responded' || !this.hs || !this.serverHello || !this.rAuthBody || !this.expected) {
      throw fail('unexpected_message', 'InitiatorAuth before the ServerHello was sent');
    }
    this.state = 'done';
    const { options, hs, serverHello, rAuthBody, expected } = this;
    const ch = this.incoming.body;
    const iAuthBody = await openHandshake(options.aead ?? webCryptoAead, expected.opener, record);
    const iAuth = decodeAuth(iAuthBody, HandshakeType.INITIATOR_AUTH);
    const signed = concat(SIG_CONTEXT_INITIATOR, await expected.signed);
    if (!(await options.peer.verify(iAuth.signature, signed))) {
      throw fail('bad_signature', `initiator's signature does not verify under ${options.peer.peerId}'s key`);
    }
    const iPrefix = encodeAuthPrefix(HandshakeType.INITIATOR_AUTH, iAuth.signature);
    const finished = await finishedMac(hs.initiator, await sha256(ch, serverHello, rAuthBody, iPrefix));
    if (!equalBytes(finished, iAuth.finished))
      throw fail('bad_finished', "initiator's Finished MAC is wrong");
    const transcriptHash = await sha256(ch, serverHello, rAuthBody, iAuthBody);
    return {
      role: 'responder',
      localPeerId: options.identity.peerId,
      remotePeerId: options.peer.peerId,
      suite: this.incoming.suite,
      secrets: await applicationSecrets(hs.hs, transcriptHash),
      transcriptHash,
    };
  }
}
