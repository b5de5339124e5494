/**
 * The public shapes of a connection (`Connection`, connection.ts): its options, events and statistics,
 * and what a dial hands it. Apart from the connection's code, which modules that need only these (the
 * dial, the host, the mesh) need not load.
 */
import type { CloseInfo, SessionOptions } from '../protocol/index.js';
import type { LinkStats } from '../transport/peer-link.js';

/** Tunables of a connection. */
export interface ConnectionOptions {
  session?: SessionOptions;
  /** Send a heartbeat ping this often (default 2 000 ms). */
  heartbeatIntervalMs?: number;
  /**
   * Close with `timeout` when nothing authenticated has arrived for this long (default 10 000 ms); time
   * our own event loop was stalled does not count (liveness.ts).
   */
  heartbeatTimeoutMs?: number;
  /** Close with `timeout` when a fragmented message makes no progress for this long (default 30 000 ms). */
  reassemblyTimeoutMs?: number;
  /** Stop sealing data records while the reliable channel holds this many bytes (default 1 MiB). */
  highWaterMark?: number;
  /** Datagrams received and not yet read are dropped (and counted) beyond this many bytes (default 4 MiB). */
  datagramQueueBytes?: number;
}

/** One received datagram (SLLP mode). */
export interface Datagram {
  data: Uint8Array;
  /** Sender's sequence number: gaps are losses, smaller-than-previous is reordering. */
  seq: number;
  /** Sender's clock when it was sent (ms since 1970). */
  sentAt: number;
  epoch: number;
}

/** Options of `Connection.close`. */
export interface CloseOptions {
  /**
   * How long to wait for queued messages to go out and for the peer's CLOSE (default 5 000 ms). When it
   * runs out, close() resolves with a `close_unacknowledged` error: it is not known what the peer got.
   */
  flushMs?: number;
}

/** Events of a `Connection`. Datagrams arrive on `connection.datagrams` (SLLP mode). */
export interface ConnectionEvents {
  message: Uint8Array;
  close: CloseInfo;
  /** A heartbeat measured the round-trip time (ms). */
  rtt: number;
}

export interface SendOptions {
  /** Called as records of this message are handed to the transport: bytes so far, total. */
  onProgress?: (sent: number, total: number) => void;
}

/** See the lifecycle in connection.ts's header. */
export type ConnectionState = 'open' | 'draining' | 'closing' | 'closed';

/** Statistics of both modes. */
export interface ConnectionStats extends LinkStats {
  /** Heartbeat round-trip time through p2ptls (ms). */
  heartbeatRttMs?: number;
  messagesSent: number;
  messagesReceived: number;
  flowControl: {
    /** Credit the peer has left us: a message waits while it is too small. */
    sendCredit: number;
    /** Bytes received and not yet read by the application (bounded by the receive window). */
    buffered: number;
  };
  datagrams: {
    sent: number;
    /** Dropped locally because the SLLP channel's buffer was full (`send` resolved with -1). */
    droppedLocally: number;
    received: number;
    reordered: number;
    dropped: {
      invalid: number;
      replay: number;
      stale: number;
      /** Arrived before the handshake completed: unauthenticated, never buffered. */
      early: number;
      /** Arrived while the application's unread datagrams already filled `datagramQueueBytes`. */
      unread: number;
    };
  };
}

/**
 * Milliseconds from the start of a dial (`Host.connect`, or the offer's arrival) to each stage, for the
 * set-up split of bench:transport (`connection.setup`). ICE and DTLS are the link's own events, where
 * the stack reports them.
 */
export interface SetupTimings {
  /**
   * When the dial started, as `performance.timeOrigin + performance.now()`: milliseconds since the epoch
   * on this machine's clock, so that both sides' timings go on one time line (even from two processes).
   */
  startedAt?: number;
  /** The hello-bearing signal went out: offer + ClientHello, or answer + ServerHello + ResponderAuth. */
  signaled?: number;
  /** Outgoing: the answer with ServerHello and ResponderAuth arrived. */
  answered?: number;
  iceConnected?: number;
  dtlsConnected?: number;
  /** Outgoing: the reliable channel open, InitiatorAuth out (PROTOCOL.md §8 step 4). */
  reliableOpen?: number;
  /** Both data channels open. */
  open?: number;
  /** The peer's Auth verified: ResponderAuth from the answer, or InitiatorAuth from the data channel. */
  peerVerified?: number;
  /** The peer is authenticated and the connection exists. */
  established: number;
}

/** What the dial hands over with the link: reliable records that arrived during the handshake. */
export interface EarlyInput {
  reliable: Uint8Array[];
  /** Datagrams that arrived before the handshake completed and were dropped. */
  datagramsDropped: number;
  /** How the dial's stages went (absent for a connection made without a dial, as in tests). */
  setup?: SetupTimings;
}
