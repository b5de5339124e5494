/**
 * Wire constants of p2ptls version 4. Every number here is specified in docs/PROTOCOL.md; change both
 * together.
 */

/** "P2PT": first bytes of every hello, so a stray non-p2ptls peer is told apart from a broken one. */
export const MAGIC = new Uint8Array([0x50, 0x32, 0x50, 0x54]);
/**
 * Version 2 added receiver flow control (WINDOW) and the close handshake (CLOSE_ACK, the reliable CLOSE
 * as the end-of-stream marker): PROTOCOL.md §5.3–§5.5. Version 3 moved the hellos and ResponderAuth into
 * the signaling exchange (§8) and gave the ServerHello the channel binding. Version 4 moved a reliable
 * record's type and flags inside its encryption (§5.1). Peers of different versions
 * are told apart at the ClientHello (`unsupported_version`), before any key is derived.
 */
export const VERSION = 4;

/** Cipher suites: key exchange + signature + AEAD + hash. All use RSA-PSS-SHA256, AES-256-GCM, HKDF-SHA256. */
export const Suite = {
  /** ECDHE on NIST P-256 (65-byte uncompressed key shares). Works in every WebCrypto. */
  P256_AES256GCM_SHA256: 0x0001,
  /** ECDHE on X25519 (32-byte key shares). Node ≥ 20, Chromium ≥ 133, Firefox ≥ 130, Safari ≥ 17. */
  X25519_AES256GCM_SHA256: 0x0002,
} as const;
export type Suite = (typeof Suite)[keyof typeof Suite];
export const SUPPORTED_SUITES: readonly Suite[] = [
  Suite.X25519_AES256GCM_SHA256,
  Suite.P256_AES256GCM_SHA256,
];
export const DEFAULT_SUITE: Suite = Suite.X25519_AES256GCM_SHA256;

/** Handshake message types (first byte after magic+version in hellos; first plaintext byte of auth). */
export const HandshakeType = {
  CLIENT_HELLO: 1,
  SERVER_HELLO: 2,
  RESPONDER_AUTH: 3,
  INITIATOR_AUTH: 4,
} as const;

/** Record content types (byte 0 of every record on either channel). */
export const RecordType = {
  HANDSHAKE: 0x01,
  DATA: 0x02,
  CONTROL: 0x03,
  /** Reliable channel only: the sender switches to its next traffic key after this record. */
  KEY_UPDATE: 0x04,
} as const;

/** Flags of DATA records on the reliable channel. */
export const DataFlag = {
  /** First record of a message. Without LAST, the plaintext starts with the message length (u32). */
  FIRST: 0x01,
  /** Last record of a message. */
  LAST: 0x02,
  /** With FIRST|LAST: the plaintext is several whole messages, each prefixed by its u32 length. */
  BATCH: 0x04,
} as const;

/** Control message types (first plaintext byte of a CONTROL record). */
export const ControlType = {
  CLOSE: 0x01,
  PING: 0x02,
  PONG: 0x03,
  /** Reliable channel only: the receiver's new flow-control limit (§5.5). */
  WINDOW: 0x04,
  /** Reliable channel only: the sender has processed the peer's CLOSE; its last record (§5.3). */
  CLOSE_ACK: 0x05,
} as const;

/** First close code that belongs to applications (1000–65535); below it, p2ptls's own. */
export const APPLICATION_CLOSE_CODES = 1000;

/** Close codes below 1000 are p2ptls's own; 1000–65535 belong to applications. */
export const CloseCode = {
  NORMAL: 0,
  GOING_AWAY: 1,
  PROTOCOL_ERROR: 2,
  TIMEOUT: 3,
  MESSAGE_TOO_LARGE: 4,
  INTERNAL_ERROR: 5,
} as const;

export const HASH_LEN = 32;
export const KEY_LEN = 32;
export const IV_LEN = 12;
export const TAG_LEN = 16;
export const RANDOM_LEN = 32;
export const PEER_ID_BYTES = 32;

/** Handshake record header, in the clear: type, flags (§3). */
export const HANDSHAKE_HEADER_LEN = 2;
/** A reliable record's type and flags, encrypted in front of its plaintext (§5.1). */
export const INNER_HEADER_LEN = 2;
/** Datagram header: type, flags, epoch (u16), sequence number (u48). */
export const DATAGRAM_HEADER_LEN = 10;
/** Datagram plaintext prefix: sender timestamp in ms (u48). */
export const DATAGRAM_TIMESTAMP_LEN = 6;

export const MAX_SEQ_DATAGRAM = 2 ** 48 - 1;
export const MAX_EPOCH = 0xffff;
export const MAX_CLOSE_REASON_BYTES = 1024;
export const PING_PAYLOAD_LEN = 8;
/**
 * Largest CONTROL or KEY_UPDATE record (a CLOSE with the longest reason): inner header, type, code,
 * reason, tag. Anything longer is `record_overflow`: only DATA records may be large, and only they are
 * flow-controlled (§5.5).
 */
export const MAX_CONTROL_RECORD_BYTES = INNER_HEADER_LEN + 1 + 2 + MAX_CLOSE_REASON_BYTES + TAG_LEN;
/**
 * Flow-control limit both sides assume before the first WINDOW (§5.5): a receiver must be able to buffer
 * this much, and a sender may use it at once, so the first messages never wait a round trip.
 */
export const INITIAL_WINDOW = 256 * 1024;
/** Credit a message costs on top of its bytes (§5.5): bounds what many empty messages can make a receiver hold. */
export const MESSAGE_COST_OVERHEAD = 16;

/** Defaults for {@link SessionOptions}. */
export const Defaults = {
  /** Plaintext bytes per reliable record: TLS's 16 KiB, well under every data channel's message limit. */
  recordSize: 16 * 1024,
  /** Largest record the receiver accepts (ciphertext + tag); above it: `record_overflow`. */
  maxRecordBytes: 256 * 1024,
  /** Largest message reassembled in memory. */
  maxMessageBytes: 64 * 1024 * 1024,
  /** Largest datagram payload. Keep datagrams under the path MTU (≈1200 B) for best loss behaviour. */
  maxDatagramBytes: 64 * 1024 - 64,
  /**
   * Records under one key before an automatic key update. TLS 1.3 (RFC 8446 §5.5) allows 2^24.5 full
   * records per AES-GCM key; we re-key at 2^23 to stay well inside.
   */
  maxRecordsPerKey: 2 ** 23,
  /** Anti-replay window for datagrams, in sequence numbers. */
  replayWindow: 1024,
  /**
   * Bytes of received messages (credit, §5.5) the receiver lets the peer have in flight or unread. The
   * receiver buffers at most this plus one message of up to `maxMessageBytes` that started within it.
   */
  receiveWindow: 16 * 1024 * 1024,
} as const;
