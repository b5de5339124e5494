/**
 * Encoding of handshake messages (PROTOCOL.md §3). Hellos travel in clear inside HANDSHAKE records;
 * the two Auth messages travel encrypted under the handshake traffic keys.
 */
import { fail } from '../errors.js';
import { ByteReader, ByteWriter, equalBytes } from '../util/bytes.js';
import {
  HASH_LEN,
  HandshakeType,
  MAGIC,
  PEER_ID_BYTES,
  RANDOM_LEN,
  SUPPORTED_SUITES,
  type Suite,
  VERSION,
} from './constants.js';
import { keyShareLength } from './ecdh.js';

export interface ClientHello {
  suite: Suite;
  initiatorId: Uint8Array;
  responderId: Uint8Array;
  random: Uint8Array;
  keyShare: Uint8Array;
  /** SHA-256 of the offer binding: the initiator's own DTLS fingerprint (PROTOCOL.md §3.2). */
  bindingHash: Uint8Array;
  binder: Uint8Array;
}

export interface ServerHello {
  suite: Suite;
  random: Uint8Array;
  keyShare: Uint8Array;
  /** SHA-256 of the channel binding the responder saw: both DTLS fingerprints (PROTOCOL.md §3.3). */
  bindingHash: Uint8Array;
}

/** Body of RESPONDER_AUTH and INITIATOR_AUTH. */
export interface AuthMessage {
  type: typeof HandshakeType.RESPONDER_AUTH | typeof HandshakeType.INITIATOR_AUTH;
  signature: Uint8Array;
  finished: Uint8Array;
}

function writeHead(w: ByteWriter, type: number, suite: Suite) {
  w.bytes(MAGIC).u8(VERSION).u8(type).u16(suite);
}

function readHead(r: ByteReader, expectedType: number): Suite {
  const magic = r.bytes(MAGIC.length);
  if (!equalBytes(magic, MAGIC)) throw fail('bad_magic', 'not a p2ptls handshake (bad magic)');
  const version = r.u8();
  if (version !== VERSION) throw fail('unsupported_version', `protocol version ${version} is not supported`);
  const type = r.u8();
  if (type !== expectedType)
    throw fail('unexpected_message', `expected handshake type ${expectedType}, got ${type}`);
  const suite = r.u16();
  if (!SUPPORTED_SUITES.includes(suite as Suite)) {
    throw fail('unsupported_suite', `cipher suite 0x${suite.toString(16).padStart(4, '0')} is not supported`);
  }
  return suite as Suite;
}

/** ClientHello without its binder: the bytes the binder MAC covers. */
export function encodeClientHelloPrefix(m: Omit<ClientHello, 'binder'>): Uint8Array {
  const w = new ByteWriter(256);
  writeHead(w, HandshakeType.CLIENT_HELLO, m.suite);
  return w
    .bytes(m.initiatorId)
    .bytes(m.responderId)
    .bytes(m.random)
    .vec16(m.keyShare)
    .bytes(m.bindingHash)
    .finish();
}

export function decodeClientHello(body: Uint8Array): ClientHello {
  const r = new ByteReader(body, 'ClientHello');
  const suite = readHead(r, HandshakeType.CLIENT_HELLO);
  const m: ClientHello = {
    suite,
    initiatorId: r.bytes(PEER_ID_BYTES),
    responderId: r.bytes(PEER_ID_BYTES),
    random: r.bytes(RANDOM_LEN),
    keyShare: r.vec16(),
    bindingHash: r.bytes(HASH_LEN),
    binder: r.bytes(HASH_LEN),
  };
  r.end();
  if (m.keyShare.length !== keyShareLength(suite))
    throw fail('malformed', 'ClientHello key share has the wrong length');
  return m;
}

export function encodeServerHello(m: ServerHello): Uint8Array {
  const w = new ByteWriter(128);
  writeHead(w, HandshakeType.SERVER_HELLO, m.suite);
  return w.bytes(m.random).vec16(m.keyShare).bytes(m.bindingHash).finish();
}

export function decodeServerHello(body: Uint8Array): ServerHello {
  const r = new ByteReader(body, 'ServerHello');
  const suite = readHead(r, HandshakeType.SERVER_HELLO);
  const m: ServerHello = {
    suite,
    random: r.bytes(RANDOM_LEN),
    keyShare: r.vec16(),
    bindingHash: r.bytes(HASH_LEN),
  };
  r.end();
  if (m.keyShare.length !== keyShareLength(suite))
    throw fail('malformed', 'ServerHello key share has the wrong length');
  return m;
}

/** Type byte and signature: the part of an Auth message its Finished MAC covers. */
export function encodeAuthPrefix(type: AuthMessage['type'], signature: Uint8Array): Uint8Array {
  return new ByteWriter(signature.length + 3).u8(type).vec16(signature).finish();
}

export function decodeAuth(body: Uint8Array, expected: AuthMessage['type']): AuthMessage {
  const r = new ByteReader(body, 'Auth');
  const type = r.u8();
  if (type !== expected) throw fail('unexpected_message', `expected handshake type ${expected}, got ${type}`);
  const m: AuthMessage = { type: expected, signature: r.vec16(), finished: r.bytes(HASH_LEN) };
  r.end();
  return m;
}
