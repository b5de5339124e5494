/**
 * Where the signaling network remembers who is online and which public identity each peerId registered.
 * In memory for one process; in Redis when several processes form one network.
 *
 * In Redis, every process has a heartbeat key with a short TTL (issue 17, point 6). Before it existed a
 * SIGKILLed process's peers stayed "online" for the 60 s presence TTL (measured: 58.6 s), signals to
 * them were acknowledged and lost, and their rooms never heard `room:left`. Now each process records
 * which presence keys and room memberships are its own; a survivor that sees a heartbeat missing claims
 * that process (SET NX, so exactly one survivor acts), deletes its presence and memberships and reports
 * each membership gone, so that `room:left` is emitted once. Until the reaping is done, every survivor
 * already answers from surviving data: entries of a process whose heartbeat it saw missing are ignored.
 */
import type { RedisClientType } from 'redis';
import type { PublicIdentityJson } from '../src/identity/index.js';
import { rememberKey } from '../src/util/bounded.js';
import { packIdentity, unpackIdentity } from './packed-identity.js';

/** A peer as the directory knows it. */
export interface DirectoryEntry {
  identity: PublicIdentityJson | null;
  online: boolean;
}

export interface Directory {
  /** Records that `connId` now speaks for `peerId` (replacing any older connection). */
  register(peerId: string, identity: PublicIdentityJson, connId: string): Promise<void>;
  /** Marks `peerId` offline if `connId` is still the connection registered for it. */
  unregister(peerId: string, connId: string): Promise<void>;
  lookup(peerId: string): Promise<DirectoryEntry>;
  isOnline(peerId: string): Promise<boolean>;
  /** Keeps presence of this process's connections alive (Redis TTL); no-op in memory. */
  refresh(entries: ReadonlyArray<readonly [peerId: string, connId: string]>): Promise<void>;
  close(): Promise<void>;
}

/** Single-process directory. Identities of offline peers are kept (bounded, oldest dropped first). */
export class MemoryDirectory implements Directory {
  /** `identity` packed (packed-identity.ts): the directory keeps one per peer it has seen. */
  private readonly peers = new Map<string, { identity: string; connId: string | null }>();

  constructor(private readonly maxRemembered = 200_000) {}

  async register(peerId: string, identity: PublicIdentityJson, connId: string): Promise<void> {
    this.peers.delete(peerId);
    this.peers.set(peerId, { identity: packIdentity(identity), connId });
    if (this.peers.size > this.maxRemembered) {
      for (const [id, e] of this.peers) {
        if (e.connId === null) {
          this.peers.delete(id);
          break;
        }
      }
    }
  }

  async unregister(peerId: string, connId: string): Promise<void> {
    const e = this.peers.get(peerId);
    if (e && e.connId === connId) e.connId = null;
  }

  async lookup(peerId: string): Promise<DirectoryEntry> {
    const e = this.peers.get(peerId);
    if (!e) return { identity: null, online: false };
    return { identity: unpackIdentity(peerId, e.identity), online: e.connId !== null };
  }

  async isOnline(peerId: string): Promise<boolean> {
    return this.peers.get(peerId)?.connId != null;
  }

  async refresh(): Promise<void> {}

  async close(): Promise<void> {}
}

// Presence values are `<processId> <connId>`; a connection id (socket.io's, 20 random characters) is
// unique across processes, so "still this connection" is a suffix test. Deletes the presence key only
// if it still names this connection (an older connection going away must not mark the newer one, maybe
// on another process, offline), and always forgets the connection in its process's list.
const UNREGISTER_LUA = `
local v = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
if v and string.sub(v, -#ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Options of {@link RedisDirectory}. */
export interface RedisDirectoryOptions {
  /** Prefix of every key. Default `p2ptls:`. */
  prefix?: string;
  /** Backstop TTL of a presence key, refreshed by its process. Default 60. */
  presenceTtlSeconds?: number;
  identityTtlSeconds?: number;
  /** How often this process renews its heartbeat and checks the others'. Default 1000 ms. */
  heartbeatMs?: number;
  /** TTL of the heartbeat key: a process silent this long is dead. Default 3 × `heartbeatMs`. */
  heartbeatTtlMs?: number;
  /**
   * A dead process's peer left a room (it has no other connection in it). Called on exactly one
   * survivor per membership: the one that claimed the dead process.
   */
  onRoomLeft?: (room: string, peerId: string) => void;
  /**
   * This process found its own heartbeat expired (it stalled longer than the TTL, so survivors may be
   * reaping it): it continues under `newProcessId`, and must drop its connections, whose presence and
   * memberships the survivors are deleting. They reconnect and register afresh.
   */
  onFenced?: (newProcessId: string) => void;
  /** Reaping and fencing are logged here. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

/** A presence owner: the process holding the connection, and the connection. */
export interface Owner {
  processId: string;
  connId: string;
}

const newProcessId = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');

/** Dead processes remembered, so that their leftovers are ignored until reaped (and a while after). */
const MAX_DEAD = 1024;

/** Directory shared by every process connected to the same Redis. */
export class RedisDirectory implements Directory {
  /** This process's id in the network (changes if it was fenced). */
  processId = newProcessId();
  private readonly prefix: string;
  private readonly heartbeatMs: number;
  private readonly heartbeatTtlMs: number;
  /** Connections registered here → the process id they were registered under. */
  private readonly owners = new Map<string, string>();
  /** Processes whose heartbeat was seen missing. */
  private readonly dead = new Set<string>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisClientType,
    private readonly opts: RedisDirectoryOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'p2ptls:';
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? 3 * this.heartbeatMs;
  }

  private key(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  private get procsKey(): string {
    return `${this.prefix}procs`;
  }

  /** Announces this process and starts its heartbeat and the watch over the others. */
  async start(): Promise<void> {
    await this.announce();
    this.timer = setInterval(() => {
      // One tick at a time: a slow Redis must not pile up ticks.
      this.ticking ??= this.tick().finally(() => {
        this.ticking = undefined;
      });
    }, this.heartbeatMs);
    this.timer.unref?.();
  }

  private async announce(): Promise<void> {
    await this.redis
      .multi()
      .sAdd(this.procsKey, this.processId)
      .set(this.key('proc', this.processId), '1', { expiration: { type: 'PX', value: this.heartbeatTtlMs } })
      .exec();
  }

  private async tick(): Promise<void> {
    try {
      const renewed = await this.redis.set(this.key('proc', this.processId), '1', {
        condition: 'XX',
        expiration: { type: 'PX', value: this.heartbeatTtlMs },
      });
      if (renewed === null) await this.fence();
      await this.watch();
    } catch (err) {
      this.opts.log?.('heartbeat failed', { err });
    }
  }

  /** Our heartbeat had expired: continue as a new process; the old id is reaped like any dead one. */
  private async fence(): Promise<void> {
    const old = this.processId;
    this.processId = newProcessId();
    this.opts.log?.('heartbeat had expired: continuing as a new process', { old, processId: this.processId });
    await this.announce();
    this.opts.onFenced?.(this.processId);
  }

  /** Finds processes whose heartbeat is missing; reaps those no other survivor has claimed. */
  private async watch(): Promise<void> {
    const others = (await this.redis.sMembers(this.procsKey)).filter((p) => p !== this.processId);
    if (others.length === 0) return;
    const alive = await Promise.all(others.map((p) => this.redis.exists(this.key('proc', p))));
    for (const [i, p] of others.entries()) {
      if (alive[i] === 1) continue;
      if (!this.dead.has(p)) rememberKey(this.dead, p, MAX_DEAD);
      await this.reap(p);
    }
  }

  private async reap(pid: string): Promise<void> {
    const claimed = await this.redis.set(this.key('reap', pid), this.processId, {
      condition: 'NX',
      // Long enough to finish; if the claimer dies meanwhile, another survivor retries after this.
      expiration: { type: 'PX', value: 60_000 },
    });
    if (claimed === null) return;
    const started = Date.now();
    const { peers, memberships } = await this.purge(pid, true);
    await this.redis.sRem(this.procsKey, pid);
    this.opts.log?.('reaped a dead process', {
      processId: pid,
      peers,
      memberships,
      ms: Date.now() - started,
    });
  }

  /**
   * Deletes what process `pid` recorded: its presence keys (those still naming its connections) and
   * room memberships. With `report`, each membership gone (the peer has no other one in the room) is
   * passed to `onRoomLeft`.
   */
  private async purge(pid: string, report: boolean): Promise<{ peers: number; memberships: number }> {
    const peers = await this.redis.sMembers(this.key('proc-peers', pid));
    await Promise.all(
      peers.map((entry) => {
        const [peerId = '', connId = ''] = entry.split(' ');
        return this.redis.eval(UNREGISTER_LUA, {
          keys: [this.key('online', peerId), this.key('proc-peers', pid)],
          arguments: [` ${connId}`, entry],
        });
      }),
    );
    const memberships = await this.redis.sMembers(this.key('proc-rooms', pid));
    const left = new Map<string, Set<string>>();
    await Promise.all(
      memberships.map((entry) => {
        const cut = entry.indexOf(' ');
        const room = entry.slice(0, cut);
        const member = entry.slice(cut + 1);
        const peersOfRoom = left.get(room) ?? new Set<string>();
        left.set(room, peersOfRoom);
        peersOfRoom.add(member.split(' ')[0] ?? '');
        return this.redis.sRem(this.key('room', room), member);
      }),
    );
    // A peer that already reconnected to a survivor and re-joined is still a member: no room:left.
    for (const [room, peerIds] of report ? left : []) {
      const still = new Set(await this.roomMembers(room));
      for (const peerId of peerIds) if (!still.has(peerId)) this.opts.onRoomLeft?.(room, peerId);
    }
    await this.redis.del([this.key('proc-peers', pid), this.key('proc-rooms', pid)]);
    return { peers: peers.length, memberships: memberships.length };
  }

  /** The connection registered for `peerId`, unless its process is known dead. */
  async owner(peerId: string): Promise<Owner | undefined> {
    return this.parseOwner(await this.redis.get(this.key('online', peerId)));
  }

  private parseOwner(value: string | null | undefined): Owner | undefined {
    if (typeof value !== 'string') return undefined;
    const cut = value.indexOf(' ');
    const owner = { processId: value.slice(0, cut), connId: value.slice(cut + 1) };
    return this.dead.has(owner.processId) ? undefined : owner;
  }

  async register(peerId: string, identity: PublicIdentityJson, connId: string): Promise<void> {
    const pid = this.processId;
    this.owners.set(connId, pid);
    await this.redis
      .multi()
      .set(this.key('identity', peerId), JSON.stringify(identity), {
        expiration: { type: 'EX', value: this.opts.identityTtlSeconds ?? 7 * 86400 },
      })
      .set(this.key('online', peerId), `${pid} ${connId}`, {
        expiration: { type: 'EX', value: this.opts.presenceTtlSeconds ?? 60 },
      })
      .sAdd(this.key('proc-peers', pid), `${peerId} ${connId}`)
      .exec();
  }

  async unregister(peerId: string, connId: string): Promise<void> {
    const pid = this.owners.get(connId) ?? this.processId;
    this.owners.delete(connId);
    await this.redis.eval(UNREGISTER_LUA, {
      keys: [this.key('online', peerId), this.key('proc-peers', pid)],
      arguments: [` ${connId}`, `${peerId} ${connId}`],
    });
  }

  async lookup(peerId: string): Promise<DirectoryEntry> {
    const [identity, online] = await this.redis.mGet([
      this.key('identity', peerId),
      this.key('online', peerId),
    ]);
    let parsed: PublicIdentityJson | null = null;
    if (typeof identity === 'string') {
      try {
        parsed = JSON.parse(identity) as PublicIdentityJson;
      } catch {
        parsed = null;
      }
    }
    return { identity: parsed, online: this.parseOwner(online) !== undefined };
  }

  async isOnline(peerId: string): Promise<boolean> {
    return (await this.owner(peerId)) !== undefined;
  }

  async refresh(entries: ReadonlyArray<readonly [string, string]>): Promise<void> {
    if (entries.length === 0) return;
    const ttl = this.opts.presenceTtlSeconds ?? 60;
    const m = this.redis.multi();
    for (const [peerId, connId] of entries) {
      const pid = this.owners.get(connId) ?? this.processId;
      // NX: never overwrite a newer connection's registration (made on another process meanwhile).
      m.set(this.key('online', peerId), `${pid} ${connId}`, {
        condition: 'NX',
        expiration: { type: 'EX', value: ttl },
      });
      m.expire(this.key('online', peerId), ttl);
    }
    await m.exec();
  }

  /** Records a room membership of one of this process's connections. */
  async joinRoom(room: string, peerId: string, connId: string): Promise<void> {
    const pid = this.owners.get(connId) ?? this.processId;
    const member = `${peerId} ${pid} ${connId}`;
    await this.redis
      .multi()
      .sAdd(this.key('room', room), member)
      .sAdd(this.key('proc-rooms', pid), `${room} ${member}`)
      .exec();
  }

  async leaveRoom(room: string, peerId: string, connId: string): Promise<void> {
    const pid = this.owners.get(connId) ?? this.processId;
    const member = `${peerId} ${pid} ${connId}`;
    await this.redis
      .multi()
      .sRem(this.key('room', room), member)
      .sRem(this.key('proc-rooms', pid), `${room} ${member}`)
      .exec();
  }

  /** A room's members across all processes, sorted, from Redis alone (no request to other processes). */
  async roomMembers(room: string): Promise<string[]> {
    const ids = new Set<string>();
    for (const m of await this.redis.sMembers(this.key('room', room))) {
      const [peerId = '', pid = ''] = m.split(' ');
      if (!this.dead.has(pid)) ids.add(peerId);
    }
    return [...ids].sort();
  }

  /**
   * Stops the heartbeat and withdraws this process. Its connections are closed by now and said goodbye
   * themselves (`room:left` on disconnect); whatever they left behind is purged without events.
   */
  async close(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    if (!this.redis.isOpen) return;
    const pid = this.processId;
    await this.purge(pid, false);
    await this.redis.multi().del(this.key('proc', pid)).sRem(this.procsKey, pid).exec();
  }
}
