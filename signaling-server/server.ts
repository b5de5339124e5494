/**
 * The p2ptls signaling server: socket.io on Node's HTTP server. Peers prove their peerId by signing a
 * challenge; afterwards the server relays signed signals and pairing messages between authenticated
 * peers, answers public-key lookups and keeps rooms. It can drop messages but not forge them, and it
 * never sees a pair's key (shares travel RSA-OAEP-encrypted between the peers).
 *
 * With `redisUrl`, several processes form one network: registered identities, presence, room members
 * and per-process heartbeats live in Redis (directory.ts); a signal or pairing message for a peer on
 * another process goes through RedisRelay (relay.ts), which the owning process answers once it handed
 * the message to a connected socket or refused it (budget, not reading); room events reach every
 * process through @socket.io/redis-adapter.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createAdapter } from '@socket.io/redis-adapter';
import pino, { type Logger } from 'pino';
import { createClient, type RedisClientType } from 'redis';
import { type ServerOptions, type Socket, Server as SocketIoServer } from 'socket.io';
import { fail, isP2PTLSError, type P2PTLSError } from '../src/errors.js';
import { PublicIdentity } from '../src/identity/index.js';
import {
  type ClientAck,
  type ClientEventName,
  ClientEvents,
  type ClientRequest,
  describeIssues,
  MAX_HTTP_BUFFER_BYTES,
  MAX_PAYLOAD_BYTES,
  type ServerEvent,
  type ServerEventName,
  SIGNALING_VERSION,
  type SignedSignal,
} from '../src/signaling/messages.js';
import { authSignedBytes, signalingOrigin } from '../src/signaling/wire.js';
import { fromBase64Url, toBase64Url } from '../src/util/bytes.js';
import { type Directory, MemoryDirectory, RedisDirectory } from './directory.js';
import {
  Counts,
  EventBudget,
  KeyedBuckets,
  RecipientBudget,
  RoomChurn,
  TokenBucket,
  type Verdict,
} from './limits.js';
import { memberPage } from './member-pages.js';
import { SignalingMetrics } from './metrics.js';
import { type Delivery, RedisRelay } from './relay.js';
import { RoomChanges } from './rooms.js';
import { isSignalRequest } from './signal-check.js';
import { serveStatic } from './static.js';

/** Abuse limits. A value of 0 disables that limit (e.g. for a benchmark from one address). */
export interface SignalingLimits {
  /** Events per second one authenticated connection may send (burst: four seconds' worth). Default 100. */
  eventsPerSecond?: number;
  /** Events per second all connections of one IP address may send together. Default 5000. */
  ipEventsPerSecond?: number;
  /**
   * Refused events a connection may accumulate within 10 s before it is disconnected as a flooder.
   * Only the first refusal of each 10-s window is answered (`rate_limited`); the rest are dropped
   * unanswered. Default 50.
   */
  floodStrikes?: number;
  /** New connections per minute from one IP address (burst a tenth of it, at least 10). Default 600. */
  ipConnectionsPerMinute?: number;
  /** Connections from one IP address that have not authenticated yet. Default 64. */
  ipUnauthenticated?: number;
  /** Time a connection has to authenticate before it is dropped. Default 5000 ms. */
  authTimeoutMs?: number;
  /**
   * Packets waiting to be written to one connection (it does not read what it asked for) before it is
   * disconnected. Default 1000.
   */
  maxPendingPackets?: number;
  /**
   * Signals one peer is delivered per second, shared fairly among its senders; the rest are refused
   * with `recipient_busy`. In Redis mode the process holding the recipient's connection counts its
   * senders on every process. Default 400.
   */
  recipientSignalsPerSecond?: number;
  /** Rooms one connection may be in. Default 64. */
  maxRoomsPerPeer?: number;
  /** Members one room may have (`room_full` beyond). Default 256. */
  maxRoomMembers?: number;
  /**
   * Repeated joins per second in one room, all peers together (burst twice that): a peer's first join of
   * the room in 10 s is not charged. Leaves are never refused. Default 20.
   */
  roomChangesPerSecond?: number;
  /** Room joins per second of one connection (burst `maxRoomsPerPeer`). Default 2. */
  peerRoomChangesPerSecond?: number;
  /**
   * Member-list pages per second of one connection: each `room:members`, and each `room:join` of a room
   * it is already in (burst eight seconds' worth). Beyond, they are refused like events over the event
   * budget (`rate_limited`, then silence, then `flood`). Default 8.
   */
  memberPagesPerSecond?: number;
  /**
   * Pairing messages one authenticated peer may send per minute, across its connections and whatever
   * their kind. Default 20: pairing is a rare, human-paced act, and every request costs its recipient
   * a signature check (issue 13, point 6).
   */
  pairingPerPeerPerMinute?: number;
}

/** Options of {@link startSignalingServer}. */
export interface SignalingServerOptions {
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Redis URL for scale-out (several processes, one network). Without it everything is in memory. */
  redisUrl?: string;
  /** Prefix of the Redis keys and channels, to share one Redis between networks. Default `p2ptls:`. */
  redisPrefix?: string;
  /** Logger; default a pino logger on stderr at `logLevel`. */
  logger?: Logger;
  /** Default `info`. */
  logLevel?: string;
  /** Serve files from this directory for requests that are not signaling, /healthz or /metrics. */
  staticDir?: string;
  /** Called first for other HTTP requests; return true when it answered. */
  requestHandler?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
  /**
   * Origins clients may sign their login proof for besides the server's own listen URL, e.g. the public
   * `https://signal.example.org` when the server sits behind a reverse proxy, or `http://box.lan:8080`
   * when clients reach it by a name. Request headers (Host, X-Forwarded-Host) are never consulted: the
   * client writes them, so a server that relayed a victim's proof could name itself there.
   */
  publicOrigins?: string[];
  /** Take the client address from X-Forwarded-For (only behind a trusted proxy). Default false. */
  trustProxy?: boolean;
  limits?: SignalingLimits;
  /** Extra socket.io server options (CORS for cross-origin web apps, ping intervals). */
  socketOptions?: Partial<ServerOptions>;
}

/** A running server. */
export interface SignalingServerHandle {
  /** `http://host:port` */
  url: string;
  /**
   * The origins a login proof may be signed for (without the equivalent `ws:`/`wss:` forms): the listen
   * URL, `http://localhost:port` on a loopback bind, every local address for a wildcard bind, then
   * `publicOrigins`.
   */
  origins: readonly string[];
  port: number;
  host: string;
  metrics: SignalingMetrics;
  /** Disconnects everyone, stops listening and closes Redis connections. */
  close(): Promise<void>;
}

interface SocketData {
  peerId?: string;
}

interface InterServerEvents {
  'p2ptls:replace': (msg: { peerId: string; keep: string }) => void;
}

// Incoming events are untyped on purpose: all of them go through `dispatch`, which validates.
type ClientToServer = Record<string, (...args: unknown[]) => void>;
type ServerToClient = { [E in ServerEventName]: (arg: ServerEvent<E>) => void };
type IoServer = SocketIoServer<ClientToServer, ServerToClient, InterServerEvents, SocketData>;
type IoSocket = Socket<ClientToServer, ServerToClient, InterServerEvents, SocketData>;

/** Per-connection state kept out of `socket.data`, which is serialised to other processes. */
interface Conn {
  socket: IoSocket;
  ip: string;
  /**
   * `challenged`: the challenge is out, and the one event accepted is `auth`; `authenticating`: that
   * `auth` is being checked, and any other event closes the connection; `authenticated`: bound to
   * `peerId`, events are served within the budgets. A failed `auth` closes the connection.
   */
  phase: 'challenged' | 'authenticating' | 'authenticated';
  /** Until `auth` is answered; then '' (a challenge is answered once). */
  challenge: string;
  peerId: string | undefined;
  authTimer: ReturnType<typeof setTimeout> | undefined;
  budget: EventBudget;
  /**
   * Joins of this connection, and its member-list pages (`room:members`, a repeated `room:join`): made
   * at first use, when their limit is on. A bucket nobody has charged is full, so making it late changes
   * no answer, and a peer that never joins a room does not keep two (~0.2 KB with their numbers).
   */
  roomChanges: TokenBucket | undefined;
  memberPages: TokenBucket | undefined;
  /** Counted in `unauthenticated` until it authenticates or goes away. */
  counted: boolean;
}

type Handler<E extends ClientEventName> = (
  conn: Conn,
  req: ClientRequest<E>,
) => Promise<Omit<ClientAck<E>, 'ok'>>;

const peerRoom = (peerId: string) => `peer:${peerId}`;
const roomKey = (room: string) => `room:${room}`;

/** Starts a signaling server and resolves once it listens. */
export async function startSignalingServer(
  options: SignalingServerOptions = {},
): Promise<SignalingServerHandle> {
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info' }, pino.destination(2));
  const limits = {
    eventsPerSecond: options.limits?.eventsPerSecond ?? 100,
    ipEventsPerSecond: options.limits?.ipEventsPerSecond ?? 5000,
    floodStrikes: options.limits?.floodStrikes ?? 50,
    ipConnectionsPerMinute: options.limits?.ipConnectionsPerMinute ?? 600,
    ipUnauthenticated: options.limits?.ipUnauthenticated ?? 64,
    authTimeoutMs: options.limits?.authTimeoutMs ?? 5000,
    maxPendingPackets: options.limits?.maxPendingPackets ?? 1000,
    recipientSignalsPerSecond: options.limits?.recipientSignalsPerSecond ?? 400,
    maxRoomsPerPeer: options.limits?.maxRoomsPerPeer ?? 64,
    maxRoomMembers: options.limits?.maxRoomMembers ?? 256,
    roomChangesPerSecond: options.limits?.roomChangesPerSecond ?? 20,
    peerRoomChangesPerSecond: options.limits?.peerRoomChangesPerSecond ?? 2,
    memberPagesPerSecond: options.limits?.memberPagesPerSecond ?? 8,
    pairingPerPeerPerMinute: options.limits?.pairingPerPeerPerMinute ?? 20,
  };
  const publicOrigins = (options.publicOrigins ?? []).map(signalingOrigin);
  let port = 0;
  const host = options.host ?? '127.0.0.1';
  const metrics = new SignalingMetrics();
  const conns = new Map<string, Conn>();
  const background = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>, what: string) => {
    const q = p.catch((err: unknown) => log.warn({ err }, `${what} failed`));
    background.add(q);
    void q.finally(() => background.delete(q));
  };

  const bucketsOrNull = (perSecond: number, burst: number) =>
    perSecond > 0 ? new KeyedBuckets(perSecond, burst) : null;
  const ipEvents = bucketsOrNull(limits.ipEventsPerSecond, limits.ipEventsPerSecond);
  // A tenth of the minute's connections at once (at least 10): a reconnection storm from one address,
  // such as a pre-auth flooder coming back each time it is cut off, is paced, not served 600 at once.
  const ipConnections = bucketsOrNull(
    limits.ipConnectionsPerMinute / 60,
    Math.min(limits.ipConnectionsPerMinute, Math.max(10, Math.ceil(limits.ipConnectionsPerMinute / 10))),
  );
  // Keyed by peerId, not connection: reconnecting must not buy a sender a fresh pairing budget.
  const pairing = bucketsOrNull(limits.pairingPerPeerPerMinute / 60, limits.pairingPerPeerPerMinute);
  const roomChurn = limits.roomChangesPerSecond > 0 ? new RoomChurn(limits.roomChangesPerSecond) : null;
  const recipients = new RecipientBudget(limits.recipientSignalsPerSecond);
  const unauthenticated = new Counts();
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const b of [ipEvents, ipConnections, pairing, roomChurn]) b?.sweep(now);
    recipients.sweep(now);
  }, 5000);
  sweeper.unref?.();

  const http = createServer((req, res) => {
    handleHttp(req, res).catch((err: unknown) => {
      log.error({ err }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const body = JSON.stringify({ ok: true, peers: countPeers(), connections: conns.size });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    if (path === '/metrics') {
      const text = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    if (options.requestHandler && (await options.requestHandler(req, res))) return;
    if (options.staticDir && (await serveStatic(options.staticDir, req, res))) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }

  const io: IoServer = new SocketIoServer(http, {
    serveClient: false,
    maxHttpBufferSize: MAX_HTTP_BUFFER_BYTES,
    // An engine.io connection that never joins the namespace never reaches the auth timer either.
    ...(limits.authTimeoutMs > 0 ? { connectTimeout: limits.authTimeoutMs } : {}),
    ...options.socketOptions,
  });
  const roomChanges = new RoomChanges(ROOM_TICK_MS, (room, peerId, change) => {
    const key = roomKey(room);
    if (change === 'joined') io.to(key).except(peerRoom(peerId)).emit('room:joined', { room, peerId });
    else io.to(key).emit('room:left', { room, peerId });
  });

  let directory: Directory = new MemoryDirectory();
  let redis: { pub: RedisClientType; sub: RedisClientType; relaySub: RedisClientType } | undefined;
  // Redis mode (issue 17, point 6): presence, rooms and process heartbeats in Redis; confirmed delivery.
  let shared: { directory: RedisDirectory; relay: RedisRelay } | undefined;
  let refreshTimer: ReturnType<typeof setInterval> | undefined;
  if (options.redisUrl) {
    const pub: RedisClientType = createClient({ url: options.redisUrl });
    const sub: RedisClientType = pub.duplicate();
    const relaySub: RedisClientType = pub.duplicate();
    for (const c of [pub, sub, relaySub]) c.on('error', (err: unknown) => log.error({ err }, 'redis error'));
    await Promise.all([pub.connect(), sub.connect(), relaySub.connect()]);
    redis = { pub, sub, relaySub };
    const prefix = options.redisPrefix ?? 'p2ptls:';
    io.adapter(createAdapter(pub, sub, { key: `${prefix}sio`, requestsTimeout: 3000 }));
    const presenceTtlSeconds = 60;
    const logInfo = (msg: string, fields: Record<string, unknown>) => log.info(fields, msg);
    const dir = new RedisDirectory(pub, {
      prefix,
      presenceTtlSeconds,
      log: logInfo,
      // A crashed process's peer left a room: tell the remaining members (this process claimed it).
      onRoomLeft: (room, peerId) => roomChanges.add(room, peerId, 'left'),
      // We stalled past our heartbeat's TTL and survivors are reaping us: our connections re-register.
      onFenced: (processId) => {
        track(relay.listen(processId), 'relay listen');
        io.local.disconnectSockets(true);
      },
    });
    const relay = new RedisRelay({
      pub,
      sub: relaySub,
      directory: dir,
      prefix,
      deliverLocal: deliverHere,
      log: logInfo,
    });
    await relay.listen(dir.processId);
    await dir.start();
    directory = dir;
    shared = { directory: dir, relay };
    refreshTimer = setInterval(
      () => {
        const entries: [string, string][] = [];
        for (const c of conns.values()) if (c.peerId) entries.push([c.peerId, c.socket.id]);
        track(directory.refresh(entries), 'presence refresh');
      },
      (presenceTtlSeconds * 1000) / 3,
    );
    refreshTimer.unref?.();
    // Another process authenticated a peer that may still be connected here: close the old connection.
    io.on('p2ptls:replace', (msg) => {
      if (msg && typeof msg.peerId === 'string' && typeof msg.keep === 'string')
        kickLocal(msg.peerId, msg.keep);
    });
  }

  function countPeers(): number {
    let n = 0;
    for (const c of conns.values()) if (c.peerId) n++;
    return n;
  }

  function clientIp(socket: IoSocket): string {
    if (options.trustProxy) {
      const fwd = socket.handshake.headers['x-forwarded-for'];
      const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',')[0]?.trim();
      if (first) return first;
    }
    return socket.handshake.address;
  }

  function kickLocal(peerId: string, keep: string): void {
    const ids = io.of('/').adapter.rooms.get(peerRoom(peerId));
    if (!ids) return;
    for (const id of [...ids]) {
      if (id === keep) continue;
      const old = io.of('/').sockets.get(id);
      if (!old) continue;
      log.info({ peerId, old: id, keep }, 'connection replaced');
      old.emit('replaced', { reason: 'another connection authenticated with this peerId' });
      old.disconnect(true);
    }
  }

  /**
   * Whether a login proof signed for `origin` was made for this server. Only configuration decides: the
   * address we listen on and `publicOrigins`. A proof for any other origin was made for another server,
   * which may be relaying this server's challenge to log in here as its victim.
   */
  function originAccepted(origin: string): boolean {
    let signed: string;
    try {
      signed = signalingOrigin(origin);
    } catch {
      return false;
    }
    if (signed !== origin) return false;
    // ws:// and wss:// reach the same server as http:// and https://.
    const asHttp = signed.replace(/^ws(s?):/, 'http$1:');
    return acceptedOrigins().includes(asHttp);
  }

  function acceptedOrigins(): string[] {
    return [...new Set([...ownOrigins(host, port), ...publicOrigins])];
  }

  /** Emits to `peerId`'s sockets on this process; false when it has none connected here. */
  function deliverLocal(peerId: string, event: 'signal' | 'pairing', arg: unknown): boolean {
    let delivered = false;
    for (const id of io.of('/').adapter.rooms.get(peerRoom(peerId)) ?? []) {
      const s = io.of('/').sockets.get(id);
      if (!s?.connected || s.data.peerId !== peerId) continue;
      s.emit(event, arg as ServerEvent<'signal'> & ServerEvent<'pairing'>);
      delivered = true;
    }
    return delivered;
  }

  /**
   * The relay's hand-off to a peer connected to this process: a signal only within the recipient's
   * budgets (see {@link deliverSignal}), so that in Redis mode the process holding the recipient charges
   * them for senders on every process.
   */
  function deliverHere(peerId: string, event: 'signal' | 'pairing', arg: unknown): Delivery {
    if (event === 'signal') {
      const from = (arg as { from?: unknown } | null)?.from;
      const local = io.of('/').adapter.rooms.get(peerRoom(peerId));
      if (typeof from !== 'string' || !local?.size) return 'offline';
      return deliverSignal(peerId, from, arg, local);
    }
    return deliverLocal(peerId, event, arg) ? 'delivered' : 'offline';
  }

  /** Delivers wherever the peer is connected; true only once a connected socket took it. */
  function deliver(peerId: string, event: 'signal' | 'pairing', arg: unknown): Promise<boolean> {
    return shared
      ? shared.relay.deliver(peerId, event, arg).then((result) => result === 'delivered')
      : Promise.resolve(deliverLocal(peerId, event, arg));
  }

  /** A room's members, sorted: at most `maxRoomMembers` (and a dying process's leftovers in Redis). */
  async function membersOf(key: string): Promise<string[]> {
    // In Redis mode from Redis alone: no request to other processes, so a dying one cannot stall it.
    if (shared) return shared.directory.roomMembers(key.slice('room:'.length));
    const ids = new Set<string>();
    for (const id of io.of('/').adapter.rooms.get(key) ?? []) {
      const peerId = conns.get(id)?.peerId;
      if (peerId) ids.add(peerId);
    }
    return [...ids].sort();
  }

  const handlers: { [E in ClientEventName]: Handler<E> } = {
    auth: async (conn, req) => {
      try {
        if (conn.phase !== 'authenticating') throw fail('auth_failed', 'already authenticated');
        if (!originAccepted(req.origin)) {
          throw fail('auth_failed', 'the signed origin is not this server');
        }
        const pub = await PublicIdentity.import(req.identity);
        const signed = authSignedBytes(pub.peerId, fromBase64Url(conn.challenge), req.origin);
        if (!(await pub.verify(fromBase64Url(req.sig), signed))) {
          throw fail('bad_signature', 'the challenge signature does not verify under this identity');
        }
        if (!conn.socket.connected) throw fail('closed', 'connection closed during authentication');
        await bind(conn, pub);
        metrics.auth.inc({ result: 'ok' });
        return { peerId: pub.peerId };
      } catch (err) {
        metrics.auth.inc({ result: isP2PTLSError(err) ? err.code : 'server_error' });
        throw err;
      }
    },

    signal: async (conn, req) => {
      const refusal = await relaySignal(conn, req.env);
      if (refusal) throw refusal;
      return EMPTY;
    },

    pairing: async (conn, req) => {
      const me = conn.peerId!;
      if (req.msg.from.peerId !== me) throw fail('peer_id_mismatch', 'msg.from must be your own identity');
      if (req.msg.to === me) throw fail('invalid_argument', 'cannot pair with yourself');
      if (pairing && !pairing.take(me, Date.now())) {
        throw fail('rate_limited', `at most ${limits.pairingPerPeerPerMinute} pairing messages per minute`);
      }
      if (!(await deliver(req.msg.to, 'pairing', { from: me, msg: req.msg }))) {
        throw fail('peer_offline', 'the recipient is not connected');
      }
      metrics.relayed.inc({ kind: 'pairing' });
      if (req.msg.kind === 'request') metrics.pairingRequests.inc();
      return EMPTY;
    },

    lookup: async (_conn, req) => {
      const entry = await directory.lookup(req.peerId);
      return { identity: entry.identity, online: entry.online };
    },

    'room:join': async (conn, req) => {
      const key = roomKey(req.room);
      // Already in it: the first page again, paid for by the member-page budget (see `dispatch`).
      if (conn.socket.rooms.has(key)) return memberPage(await membersOf(key), undefined);
      let n = 0;
      for (const r of conn.socket.rooms) if (r.startsWith('room:')) n++;
      if (n >= limits.maxRoomsPerPeer) throw fail('rate_limited', `at most ${limits.maxRoomsPerPeer} rooms`);
      const members = await membersOf(key);
      if (limits.maxRoomMembers > 0 && members.length >= limits.maxRoomMembers) {
        throw fail('room_full', `room has ${limits.maxRoomMembers} members`);
      }
      chargeRoomJoin(conn, req.room);
      await conn.socket.join(key);
      if (shared) {
        await shared.directory.joinRoom(req.room, conn.peerId!, conn.socket.id);
        // Gone meanwhile: its disconnect already withdrew its rooms, so withdraw this one too.
        if (!conn.socket.connected) await shared.directory.leaveRoom(req.room, conn.peerId!, conn.socket.id);
      }
      roomChanges.add(req.room, conn.peerId!, 'joined');
      return memberPage(insertSorted(members, conn.peerId!), undefined);
    },

    'room:leave': async (conn, req) => {
      const key = roomKey(req.room);
      if (conn.socket.rooms.has(key)) {
        await conn.socket.leave(key);
        await shared?.directory.leaveRoom(req.room, conn.peerId!, conn.socket.id);
        roomChanges.add(req.room, conn.peerId!, 'left');
      }
      return EMPTY;
    },

    'room:members': async (_conn, req) =>
      memberPage(await membersOf(roomKey(req.room)), req.after, req.limit),
  };

  // The signal path's refusals, made once (a refused signal must not cost a stack trace each); the last
  // three are named after the {@link Delivery} they answer.
  const refusals = {
    notFromYou: fail('peer_id_mismatch', 'env.from must be your own peerId'),
    toYourself: fail('invalid_argument', 'cannot signal yourself'),
    offline: fail('peer_offline', 'the recipient is not connected'),
    over_budget: fail(
      'recipient_busy',
      `the recipient takes at most ${limits.recipientSignalsPerSecond} signals/s`,
    ),
    not_reading: fail('recipient_busy', 'the recipient is not reading its signals'),
  };

  /**
   * Relays a signal and resolves with undefined, or with why not. Synchronous when the recipient is
   * connected to this process (the common case: no promise, no microtask); asks the directory otherwise.
   */
  function relaySignal(
    conn: Conn,
    env: SignedSignal,
  ): P2PTLSError | undefined | Promise<P2PTLSError | undefined> {
    const me = conn.peerId!;
    if (env.from !== me) return refusals.notFromYou;
    if (env.to === me) return refusals.toYourself;
    const arg = { from: me, env };
    const local = io.of('/').adapter.rooms.get(peerRoom(env.to));
    if (local?.size) return signalRefusal(deliverSignal(env.to, me, arg, local));
    if (!shared) return refusals.offline;
    // Redis mode: `ok` only once the owning process handed it to a connected socket (issue 17, point 6),
    // after charging the recipient's budgets there.
    return shared.relay.deliver(env.to, 'signal', arg).then((result) => {
      // The recipient's answers are charged on this process, the sender's: they are a conversation.
      if (result === 'delivered') recipients.talked(me, env.to, Date.now());
      return signalRefusal(result);
    });
  }

  /** Hands a signal to a recipient connected here, within its budget and only while it reads. */
  function deliverSignal(to: string, from: string, arg: unknown, local: ReadonlySet<string>): Delivery {
    if (!recipients.take(to, from, Date.now())) return 'over_budget';
    if (recipientBacklogged(local)) return 'not_reading';
    return deliverLocal(to, 'signal', arg) ? 'delivered' : 'offline';
  }

  /** A signal's answer: undefined once delivered (and counted), else the refusal of that name. */
  function signalRefusal(result: Delivery): P2PTLSError | undefined {
    if (result !== 'delivered') return refusals[result];
    metrics.relayedSignals.inc();
    return undefined;
  }

  /** Acknowledges a request: `ok`, or the refusal. */
  function answer(ack: ((answer: unknown) => void) | undefined, refusal: P2PTLSError | undefined): void {
    if (refusal === undefined) {
      ack?.(OK_ACK);
      return;
    }
    metrics.rejected.inc({ reason: refusal.code });
    ack?.(errorAck(refusal));
  }

  /**
   * Churn caps of point 4 on a join: the connection's own, then the room's (every member's events pay for
   * it). Leaves are never refused nor charged: each follows a join that was admitted, so admitted joins
   * bound the churn twice over, and a refused leave would only keep a member that wants to go.
   */
  function chargeRoomJoin(conn: Conn, room: string): void {
    const now = Date.now();
    if (limits.peerRoomChangesPerSecond > 0) {
      conn.roomChanges ??= new TokenBucket(
        limits.peerRoomChangesPerSecond,
        Math.max(1, limits.maxRoomsPerPeer),
        now,
      );
      if (!conn.roomChanges.take(now)) {
        throw fail('rate_limited', `at most ${limits.peerRoomChangesPerSecond} room joins per second`);
      }
    }
    if (roomChurn && !roomChurn.take(room, conn.peerId!, now)) {
      throw fail(
        'rate_limited',
        `room ${room} takes at most ${limits.roomChangesPerSecond} joins per second`,
      );
    }
  }

  /** True when a local recipient's connection has more than `maxPendingPackets` unwritten. */
  function recipientBacklogged(socketIds: ReadonlySet<string>): boolean {
    if (limits.maxPendingPackets <= 0) return false;
    for (const id of socketIds) {
      const c = conns.get(id);
      if (c && pendingPackets(c.socket) > limits.maxPendingPackets) return true;
    }
    return false;
  }

  async function bind(conn: Conn, pub: PublicIdentity): Promise<void> {
    const peerId = pub.peerId;
    kickLocal(peerId, conn.socket.id);
    if (redis) io.serverSideEmit('p2ptls:replace', { peerId, keep: conn.socket.id });
    await directory.register(peerId, pub.export(), conn.socket.id);
    if (!conn.socket.connected) {
      track(directory.unregister(peerId, conn.socket.id), 'unregister');
      throw fail('closed', 'connection closed during authentication');
    }
    conn.peerId = peerId;
    conn.phase = 'authenticated';
    conn.challenge = '';
    conn.socket.data.peerId = peerId;
    uncount(conn);
    await conn.socket.join(peerRoom(peerId));
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conn.authTimer = undefined;
    metrics.peers.inc();
    log.debug({ peerId, ip: conn.ip }, 'authenticated');
  }

  function uncount(conn: Conn): void {
    if (!conn.counted) return;
    conn.counted = false;
    unauthenticated.remove(conn.ip);
  }

  /** Disconnects a connection for cause (after whatever answer is already queued for it). */
  function drop(conn: Conn, reason: DisconnectReason): void {
    if (!conn.socket.connected) return;
    metrics.disconnects.labels(reason).inc();
    log.debug({ peerId: conn.peerId, ip: conn.ip, reason }, 'disconnecting');
    // A connection that does not read would hold its queue until the ping timeout: engine.io's plain
    // close waits for the queue to drain first.
    if (reason === 'slow_consumer') conn.socket.conn.close(true);
    else conn.socket.disconnect(true);
  }

  /**
   * Every client event enters here, synchronously: the budgets are charged before anything is parsed,
   * and a refused event costs a few comparisons and a counter (at most one answer per strike window).
   */
  function dispatch(conn: Conn, event: unknown, args: unknown[]): void {
    if (!conn.socket.connected) return;
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (args.pop() as (answer: unknown) => void) : undefined;
    if (conn.phase === 'authenticating') {
      // Anything between the one `auth` and its answer: the client is not following the protocol.
      metrics.rejected.inc({ reason: 'not_authenticated' });
      drop(conn, 'not_authenticated');
      return;
    }
    if (conn.phase === 'challenged') {
      if (event === 'auth') {
        conn.phase = 'authenticating';
        void handle(conn, event, args, ack);
        return;
      }
      // Before authentication only `auth` is accepted, once: a stranger gets one answer, then the door.
      const e = unknownEvent(event) ?? fail('not_authenticated', 'authenticate first');
      metrics.rejected.inc({ reason: e.code });
      ack?.(errorAck(e));
      drop(conn, 'not_authenticated');
      return;
    }
    const now = Date.now();
    let verdict: Verdict = conn.budget.take(now);
    if (verdict === 'serve' && ipEvents && !ipEvents.take(conn.ip, now)) verdict = conn.budget.strike(now);
    // Member lists have their own, smaller budget, charged before anything is parsed or listed.
    if (verdict === 'serve' && limits.memberPagesPerSecond > 0 && asksMemberPage(conn.socket, event, args)) {
      conn.memberPages ??= new TokenBucket(
        limits.memberPagesPerSecond,
        limits.memberPagesPerSecond * MEMBER_PAGE_BURST_SECONDS,
        now,
      );
      if (!conn.memberPages.take(now)) verdict = conn.budget.strike(now);
    }
    if (verdict !== 'serve') {
      metrics.rejectedRateLimited.inc();
      if (verdict === 'refuse') ack?.(RATE_LIMITED_ACK);
      else if (verdict === 'disconnect') drop(conn, 'flood');
      return;
    }
    // A connection that asks without reading the answers fills our memory with them.
    if (limits.maxPendingPackets > 0 && pendingPackets(conn.socket) > limits.maxPendingPackets) {
      drop(conn, 'slow_consumer');
      return;
    }
    // The relay's hot path: a well-formed signal skips zod and, to a local recipient, every promise.
    if (event === 'signal' && args.length === 1 && isSignalRequest(args[0])) {
      const result = relaySignal(conn, args[0].env);
      if (result instanceof Promise) {
        result.then(
          (refusal) => answer(ack, refusal),
          (err: unknown) => {
            log.error({ err }, 'signal relay failed');
            answer(ack, fail('server_error', 'the server could not handle this request'));
          },
        );
      } else answer(ack, result);
      return;
    }
    void handle(conn, event, args, ack);
  }

  async function handle(
    conn: Conn,
    event: unknown,
    args: unknown[],
    ack: ((answer: unknown) => void) | undefined,
  ): Promise<void> {
    try {
      const unknown = unknownEvent(event);
      if (unknown) throw unknown;
      const name = event as ClientEventName;
      if (args.length !== 1) throw fail('malformed', 'expected exactly one argument and an acknowledgement');
      checkSize(name, args[0]);
      const parsed = ClientEvents[name].safeParse(args[0]);
      if (!parsed.success) throw fail('malformed', `${name}: ${describeIssues(parsed.error)}`);
      const handler = handlers[name] as Handler<ClientEventName>;
      const result = await handler(conn, parsed.data as ClientRequest<ClientEventName>);
      ack?.(result === EMPTY ? OK_ACK : { ok: true, ...result });
    } catch (err) {
      let e: P2PTLSError;
      if (isP2PTLSError(err)) e = err;
      else {
        log.error({ err, event: String(event).slice(0, 64) }, 'handler failed');
        e = fail('server_error', 'the server could not handle this request');
      }
      metrics.rejected.inc({ reason: e.code });
      ack?.(errorAck(e));
      // A wrong proof will not become right: drop the connection once the answer is on its way.
      if (event === 'auth') setTimeout(() => drop(conn, 'auth_failed'), 20);
    }
  }

  // Every connection's listeners are these three functions, shared: socket.io calls a listener with the
  // socket as `this`, and the connection is found by its id. A closure per connection for each cost ~0.2 KB
  // of what a connection keeps (heap snapshots of 2,000 and 4,000 clients).
  function onEvent(this: IoSocket, event: unknown, ...args: unknown[]): void {
    const conn = conns.get(this.id);
    if (conn) dispatch(conn, event, args);
  }

  /** The connection's rooms are still listed here, not in `disconnect`. */
  function onDisconnecting(this: IoSocket): void {
    const peerId = conns.get(this.id)?.peerId;
    if (!peerId) return;
    for (const key of this.rooms) {
      if (key.startsWith('room:')) {
        const room = key.slice('room:'.length);
        if (shared) track(shared.directory.leaveRoom(room, peerId, this.id), 'room leave');
        roomChanges.add(room, peerId, 'left');
      }
    }
  }

  function onDisconnect(this: IoSocket): void {
    const conn = conns.get(this.id);
    if (!conn) return;
    conns.delete(this.id);
    uncount(conn);
    metrics.connections.dec();
    if (conn.authTimer) clearTimeout(conn.authTimer);
    if (conn.peerId) {
      metrics.peers.dec();
      track(directory.unregister(conn.peerId, this.id), 'unregister');
    }
  }

  io.use((socket, next) => {
    const ip = clientIp(socket);
    if (ipConnections && !ipConnections.take(ip, Date.now())) {
      metrics.rejectedRateLimited.inc();
      return next(Object.assign(new Error('rate_limited'), { data: { code: 'rate_limited' } }));
    }
    if (limits.ipUnauthenticated > 0 && unauthenticated.get(ip) >= limits.ipUnauthenticated) {
      metrics.rejectedRateLimited.inc();
      return next(Object.assign(new Error('rate_limited'), { data: { code: 'rate_limited' } }));
    }
    const now = Date.now();
    const conn: Conn = {
      socket,
      ip,
      phase: 'challenged',
      challenge: toBase64Url(crypto.getRandomValues(new Uint8Array(32))),
      peerId: undefined,
      authTimer: undefined,
      budget: new EventBudget(limits.eventsPerSecond, limits.floodStrikes, STRIKE_WINDOW_MS, now),
      roomChanges: undefined,
      memberPages: undefined,
      counted: true,
    };
    // Counted from here, released when the engine connection closes: socket.io may never emit
    // `connection` for a client that left while the middleware ran.
    unauthenticated.add(ip);
    socket.conn.once('close', () => uncount(conn));
    conns.set(socket.id, conn);
    next();
  });

  io.on('connection', (socket) => {
    const conn = conns.get(socket.id);
    if (!conn) {
      socket.disconnect(true);
      return;
    }
    metrics.connections.inc();
    if (limits.authTimeoutMs > 0) {
      conn.authTimer = setTimeout(() => {
        if (!conn.peerId) drop(conn, 'auth_timeout');
      }, limits.authTimeoutMs);
    }
    socket.onAny(onEvent);
    socket.on('disconnecting', onDisconnecting);
    socket.on('disconnect', onDisconnect);
    socket.emit('challenge', { v: SIGNALING_VERSION, nonce: conn.challenge });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 8080, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  port = (http.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const origins = acceptedOrigins();
  log.info({ url, origins, redis: Boolean(redis) }, 'signaling server listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    origins,
    port,
    host,
    metrics,
    close: () => {
      closing ??= (async () => {
        if (refreshTimer) clearInterval(refreshTimer);
        clearInterval(sweeper);
        roomChanges.close();
        await io.close();
        shared?.relay.close();
        await Promise.allSettled([...background]);
        await directory.close();
        if (redis) await Promise.allSettled([redis.pub.quit(), redis.sub.quit(), redis.relaySub.quit()]);
        log.info('signaling server closed');
      })();
      return closing;
    },
  };
}

/** How often coalesced room changes go out (PROTOCOL.md §9, rooms). */
const ROOM_TICK_MS = 100;
/**
 * Seconds of `memberPagesPerSecond` a connection may spend at once. With the default 8/s: 64 pages, the
 * whole lists of 16 full rooms (256 members: 4 pages) at once, e.g. a mesh host re-reading its rooms
 * after a reconnection; and a connection joining full rooms at its join rate (2/s) follows the 3 further
 * pages of each with 6 of its 8 pages per second (src/mesh/mesh.ts reads the list once per join and
 * once per reconnection).
 */
const MEMBER_PAGE_BURST_SECONDS = 8;
/** The window in which a connection's refused events count towards `floodStrikes`. */
const STRIKE_WINDOW_MS = 10_000;

type DisconnectReason = 'flood' | 'not_authenticated' | 'auth_failed' | 'auth_timeout' | 'slow_consumer';

// Answers that every refused or empty-handed event shares, instead of one allocation each.
const EMPTY = Object.freeze({});
const OK_ACK = Object.freeze({ ok: true });
const RATE_LIMITED_ACK = Object.freeze({
  ok: false,
  error: Object.freeze({ code: 'rate_limited', message: 'too many requests; slow down' }),
});

function errorAck(e: P2PTLSError): { ok: false; error: { code: string; message: string } } {
  return { ok: false, error: { code: e.code, message: e.message.slice(0, 500) } };
}

/**
 * Whether an event asks for a member-list page: `room:members`, or a `room:join` of a room the
 * connection is already in (a fresh join is paid for by the churn caps). Looks at the raw argument, so
 * that a refusal costs no parsing.
 */
function asksMemberPage(socket: IoSocket, event: unknown, args: unknown[]): boolean {
  if (event === 'room:members') return true;
  if (event !== 'room:join') return false;
  const room = (args[0] as { room?: unknown } | null | undefined)?.room;
  return typeof room === 'string' && socket.rooms.has(roomKey(room));
}

function unknownEvent(event: unknown): P2PTLSError | undefined {
  if (typeof event === 'string' && Object.hasOwn(ClientEvents, event)) return undefined;
  return fail('unknown_event', `unknown event ${JSON.stringify(String(event).slice(0, 64))}`);
}

/**
 * `payload_too_large` for an argument over MAX_PAYLOAD_BYTES of JSON. A signal's schema bounds every
 * field but the payload, so its payload length is the check (a JSON.stringify of every relayed signal
 * cost ~4 % of the server's CPU under the 1000-client bench); the other events are rare and measured.
 */
function checkSize(name: ClientEventName, arg: unknown): void {
  let size: number;
  if (name === 'signal') {
    const payload = (arg as { env?: { payload?: unknown } } | null)?.env?.payload;
    size = typeof payload === 'string' ? payload.length : 0;
  } else {
    try {
      size = JSON.stringify(arg)?.length ?? 0;
    } catch {
      throw fail('malformed', 'argument is not JSON');
    }
  }
  if (size > MAX_PAYLOAD_BYTES) {
    throw fail('payload_too_large', `argument of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  }
}

/**
 * Packets engine.io holds for a connection because the previous write has not drained: the websocket
 * transport takes the next batch only after the kernel accepted the last, so a peer that does not read
 * makes this grow. `writeBuffer` is engine.io's (6.x) own queue; it is not typed as public.
 */
function pendingPackets(socket: IoSocket): number {
  const buffer = (socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer;
  return Array.isArray(buffer) ? buffer.length : 0;
}

function insertSorted(members: string[], peerId: string): string[] {
  if (members.includes(peerId)) return members;
  return [...members, peerId].sort();
}

const httpOrigin = (address: string, port: number) =>
  signalingOrigin(`http://${address.includes(':') ? `[${address}]` : address}:${port}`);

/**
 * The origins a client that connects straight to `host:port` signs: the bound address itself; for a
 * loopback address also `localhost` (what people type, and what `npm start` prints); for a wildcard bind
 * every address of this machine's interfaces, read at each login since they can change. A client that
 * reaches the server by any other name (DNS, a proxy) needs that origin in `publicOrigins`.
 */
function ownOrigins(host: string, port: number): string[] {
  const bare = host.replace(/^\[|\]$/g, '');
  const wildcard = bare === '' || bare === '0.0.0.0' || bare === '::';
  if (!wildcard) {
    const loopback = bare === 'localhost' || bare === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bare);
    return [httpOrigin(bare, port), ...(loopback ? [httpOrigin('localhost', port)] : [])];
  }
  const out = [httpOrigin('localhost', port)];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      // `0.0.0.0` listens on IPv4 only; `::` (and no host) on both.
      if (bare === '0.0.0.0' && isIP(a.address) !== 4) continue;
      // Link-local IPv6 addresses need a zone id, which does not fit in an origin.
      if (a.scopeid) continue;
      out.push(httpOrigin(a.address, port));
    }
  }
  return out;
}
