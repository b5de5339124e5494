/**
 * The p2ptls signaling server: socket.io on Node's HTTP server. Peers prove their peerId by signing a
 * challenge; afterwards the server relays signed signals and pairing messages between authenticated
 * peers, answers public-key lookups and keeps rooms. It can drop messages but not forge them, and it
 * never sees a pair's key (shares travel RSA-OAEP-encrypted between the peers).
 *
 * With `redisUrl`, several processes form one network through @socket.io/redis-adapter: every peer sits
 * in a socket.io room named after its peerId (so `io.to(peer:<id>)` reaches it on any process), and
 * registered identities and presence live in Redis.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createAdapter } from '@socket.io/redis-adapter';
import pino, { type Logger } from 'pino';
import { RateLimiterMemory } from 'rate-limiter-flexible';
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
} from '../src/signaling/messages.js';
import { authSignedBytes, signalingOrigin } from '../src/signaling/wire.js';
import { fromBase64Url, toBase64Url } from '../src/util/bytes.js';
import { type Directory, MemoryDirectory, RedisDirectory } from './directory.js';
import { SignalingMetrics } from './metrics.js';
import { RedisRelay } from './relay.js';
import { serveStatic } from './static.js';

/** Abuse limits. A value of 0 disables that limit (e.g. for a benchmark from one address). */
export interface SignalingLimits {
  /** Events per second one connection may send. Default 100. */
  eventsPerSecond?: number;
  /** Events per second all connections of one IP address may send together. Default 5000. */
  ipEventsPerSecond?: number;
  /** New connections per minute from one IP address. Default 600. */
  ipConnectionsPerMinute?: number;
  /** Time a connection has to authenticate before it is dropped. Default 10 000 ms. */
  authTimeoutMs?: number;
  /** Rooms one connection may be in. Default 64. */
  maxRoomsPerPeer?: number;
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
  challenge: string | undefined;
  peerId: string | undefined;
  authBusy: boolean;
  authTimer: ReturnType<typeof setTimeout> | undefined;
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
    ipConnectionsPerMinute: options.limits?.ipConnectionsPerMinute ?? 600,
    authTimeoutMs: options.limits?.authTimeoutMs ?? 10_000,
    maxRoomsPerPeer: options.limits?.maxRoomsPerPeer ?? 64,
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

  const socketLimiter =
    limits.eventsPerSecond > 0
      ? new RateLimiterMemory({ points: limits.eventsPerSecond, duration: 1 })
      : null;
  const ipLimiter =
    limits.ipEventsPerSecond > 0
      ? new RateLimiterMemory({ points: limits.ipEventsPerSecond, duration: 1 })
      : null;
  // Keyed by peerId, not connection: reconnecting must not buy a sender a fresh pairing budget.
  const pairingLimiter =
    limits.pairingPerPeerPerMinute > 0
      ? new RateLimiterMemory({ points: limits.pairingPerPeerPerMinute, duration: 60 })
      : null;
  const connLimiter =
    limits.ipConnectionsPerMinute > 0
      ? new RateLimiterMemory({ points: limits.ipConnectionsPerMinute, duration: 60 })
      : null;

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
    ...options.socketOptions,
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
      onRoomLeft: (room, peerId) => io.to(roomKey(room)).emit('room:left', { room, peerId }),
      // We stalled past our heartbeat's TTL and survivors are reaping us: our connections re-register.
      onFenced: (processId) => {
        track(relay.listen(processId), 'relay listen');
        io.local.disconnectSockets(true);
      },
    });
    const relay = new RedisRelay({ pub, sub: relaySub, directory: dir, prefix, deliverLocal, log: logInfo });
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

  /** Delivers wherever the peer is connected; true only once a connected socket took it. */
  function deliver(peerId: string, event: 'signal' | 'pairing', arg: unknown): Promise<boolean> {
    return shared
      ? shared.relay.deliver(peerId, event, arg)
      : Promise.resolve(deliverLocal(peerId, event, arg));
  }

  async function membersOf(key: string): Promise<string[]> {
    // In Redis mode from Redis alone: no request to other processes, so a dying one cannot stall it.
    if (shared) return shared.directory.roomMembers(key.slice('room:'.length));
    const sockets = await io.in(key).fetchSockets();
    const ids = new Set<string>();
    for (const s of sockets) if (typeof s.data.peerId === 'string') ids.add(s.data.peerId);
    return [...ids].sort();
  }

  const handlers: { [E in ClientEventName]: Handler<E> } = {
    auth: async (conn, req) => {
      if (conn.peerId) throw fail('auth_failed', 'already authenticated');
      if (conn.authBusy) throw fail('auth_failed', 'authentication already in progress');
      conn.authBusy = true;
      try {
        const challenge = conn.challenge;
        // Single use: a failed attempt cannot be retried with the same challenge.
        conn.challenge = undefined;
        if (!challenge) throw fail('auth_failed', 'no challenge outstanding');
        if (!originAccepted(req.origin)) {
          throw fail('auth_failed', 'the signed origin is not this server');
        }
        const pub = await PublicIdentity.import(req.identity);
        const signed = authSignedBytes(pub.peerId, fromBase64Url(challenge), req.origin);
        if (!(await pub.verify(fromBase64Url(req.sig), signed))) {
          throw fail('bad_signature', 'the challenge signature does not verify under this identity');
        }
        if (!conn.socket.connected) throw fail('closed', 'connection closed during authentication');
        await bind(conn, pub);
        metrics.auth.inc({ result: 'ok' });
        return { peerId: pub.peerId };
      } catch (err) {
        metrics.auth.inc({ result: isP2PTLSError(err) ? err.code : 'server_error' });
        // A wrong proof will not become right: drop the connection once the answer is on its way.
        setTimeout(() => conn.socket.disconnect(true), 20);
        throw err;
      } finally {
        conn.authBusy = false;
      }
    },

    signal: async (conn, req) => {
      const me = conn.peerId!;
      if (req.env.from !== me) throw fail('peer_id_mismatch', 'env.from must be your own peerId');
      if (req.env.to === me) throw fail('invalid_argument', 'cannot signal yourself');
      if (!(await deliver(req.env.to, 'signal', { from: me, env: req.env }))) {
        throw fail('peer_offline', 'the recipient is not connected');
      }
      metrics.relayed.inc({ kind: 'signal' });
      return {};
    },

    pairing: async (conn, req) => {
      const me = conn.peerId!;
      if (req.msg.from.peerId !== me) throw fail('peer_id_mismatch', 'msg.from must be your own identity');
      if (req.msg.to === me) throw fail('invalid_argument', 'cannot pair with yourself');
      try {
        await pairingLimiter?.consume(me);
      } catch (err) {
        if (err instanceof Error) throw err;
        throw fail('rate_limited', `at most ${limits.pairingPerPeerPerMinute} pairing messages per minute`);
      }
      if (!(await deliver(req.msg.to, 'pairing', { from: me, msg: req.msg }))) {
        throw fail('peer_offline', 'the recipient is not connected');
      }
      metrics.relayed.inc({ kind: 'pairing' });
      if (req.msg.kind === 'request') metrics.pairingRequests.inc();
      return {};
    },

    lookup: async (_conn, req) => {
      const entry = await directory.lookup(req.peerId);
      return { identity: entry.identity, online: entry.online };
    },

    'room:join': async (conn, req) => {
      const key = roomKey(req.room);
      if (!conn.socket.rooms.has(key)) {
        let n = 0;
        for (const r of conn.socket.rooms) if (r.startsWith('room:')) n++;
        if (n >= limits.maxRoomsPerPeer)
          throw fail('rate_limited', `at most ${limits.maxRoomsPerPeer} rooms`);
        await conn.socket.join(key);
        if (shared) {
          await shared.directory.joinRoom(req.room, conn.peerId!, conn.socket.id);
          // Gone meanwhile: its disconnect already withdrew its rooms, so withdraw this one too.
          if (!conn.socket.connected)
            await shared.directory.leaveRoom(req.room, conn.peerId!, conn.socket.id);
        }
        conn.socket.to(key).emit('room:joined', { room: req.room, peerId: conn.peerId! });
      }
      return { members: await membersOf(key) };
    },

    'room:leave': async (conn, req) => {
      const key = roomKey(req.room);
      if (conn.socket.rooms.has(key)) {
        await conn.socket.leave(key);
        await shared?.directory.leaveRoom(req.room, conn.peerId!, conn.socket.id);
        io.to(key).emit('room:left', { room: req.room, peerId: conn.peerId! });
      }
      return {};
    },

    'room:members': async (_conn, req) => ({ members: await membersOf(roomKey(req.room)) }),
  };

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
    conn.socket.data.peerId = peerId;
    await conn.socket.join(peerRoom(peerId));
    if (conn.authTimer) clearTimeout(conn.authTimer);
    metrics.peers.inc();
    log.debug({ peerId, ip: conn.ip }, 'authenticated');
  }

  async function consumeLimits(conn: Conn): Promise<void> {
    try {
      // The connection's own budget first: one flooding socket exhausts only itself, not its address.
      await socketLimiter?.consume(conn.socket.id);
      await ipLimiter?.consume(conn.ip);
    } catch (err) {
      if (err instanceof Error) throw err;
      throw fail('rate_limited', 'too many requests; slow down');
    }
  }

  async function dispatch(conn: Conn, event: unknown, args: unknown[]): Promise<void> {
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (args.pop() as (answer: unknown) => void) : undefined;
    try {
      await consumeLimits(conn);
      if (typeof event !== 'string' || !Object.hasOwn(ClientEvents, event)) {
        throw fail('unknown_event', `unknown event ${JSON.stringify(String(event).slice(0, 64))}`);
      }
      const name = event as ClientEventName;
      if (args.length !== 1) throw fail('malformed', 'expected exactly one argument and an acknowledgement');
      let size: number;
      try {
        size = JSON.stringify(args[0])?.length ?? 0;
      } catch {
        throw fail('malformed', 'argument is not JSON');
      }
      if (size > MAX_PAYLOAD_BYTES) {
        throw fail('payload_too_large', `argument of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
      }
      if (name !== 'auth' && !conn.peerId) throw fail('not_authenticated', 'authenticate first');
      const parsed = ClientEvents[name].safeParse(args[0]);
      if (!parsed.success) throw fail('malformed', `${name}: ${describeIssues(parsed.error)}`);
      const handler = handlers[name] as Handler<ClientEventName>;
      const result = await handler(conn, parsed.data as ClientRequest<ClientEventName>);
      ack?.({ ok: true, ...result });
    } catch (err) {
      let e: P2PTLSError;
      if (isP2PTLSError(err)) e = err;
      else {
        log.error({ err, event: String(event).slice(0, 64) }, 'handler failed');
        e = fail('server_error', 'the server could not handle this request');
      }
      metrics.rejected.inc({ reason: e.code });
      ack?.({ ok: false, error: { code: e.code, message: e.message.slice(0, 500) } });
    }
  }

  io.use((socket, next) => {
    if (!connLimiter) return next();
    connLimiter.consume(clientIp(socket)).then(
      () => next(),
      () => {
        metrics.rejected.inc({ reason: 'rate_limited' });
        next(Object.assign(new Error('rate_limited'), { data: { code: 'rate_limited' } }));
      },
    );
  });

  io.on('connection', (socket) => {
    const challenge = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
    const conn: Conn = {
      socket,
      ip: clientIp(socket),
      challenge,
      peerId: undefined,
      authBusy: false,
      authTimer: undefined,
    };
    conns.set(socket.id, conn);
    metrics.connections.inc();
    if (limits.authTimeoutMs > 0) {
      conn.authTimer = setTimeout(() => {
        if (!conn.peerId) socket.disconnect(true);
      }, limits.authTimeoutMs);
    }
    socket.onAny((event: unknown, ...args: unknown[]) => {
      void dispatch(conn, event, args);
    });
    socket.on('disconnecting', () => {
      if (!conn.peerId) return;
      for (const key of socket.rooms) {
        if (key.startsWith('room:')) {
          const room = key.slice('room:'.length);
          if (shared) track(shared.directory.leaveRoom(room, conn.peerId, socket.id), 'room leave');
          socket.to(key).emit('room:left', { room, peerId: conn.peerId });
        }
      }
    });
    socket.on('disconnect', () => {
      conns.delete(socket.id);
      metrics.connections.dec();
      if (conn.authTimer) clearTimeout(conn.authTimer);
      if (conn.peerId) {
        metrics.peers.dec();
        track(directory.unregister(conn.peerId, socket.id), 'unregister');
      }
    });
    socket.emit('challenge', { v: SIGNALING_VERSION, nonce: challenge });
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
