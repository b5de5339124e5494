/**
 * Where the signaling network remembers who is online and which public identity each peerId registered.
 * In memory for one process; in Redis when several processes form one network (presence keys with a TTL
 * that every process refreshes for its own connections, so a crashed process's peers expire).
 */
import type { RedisClientType } from 'redis';
import type { PublicIdentityJson } from '../src/identity/index.js';

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
  private readonly peers = new Map<string, { identity: PublicIdentityJson; connId: string | null }>();

  constructor(private readonly maxRemembered = 200_000) {}

  async register(peerId: string, identity: PublicIdentityJson, connId: string): Promise<void> {
    this.peers.delete(peerId);
    this.peers.set(peerId, { identity, connId });
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
    return { identity: e?.identity ?? null, online: e?.connId != null };
  }

  async isOnline(peerId: string): Promise<boolean> {
    return this.peers.get(peerId)?.connId != null;
  }

  async refresh(): Promise<void> {}

  async close(): Promise<void> {}
}

// Deletes the presence key only if it still names this connection: an older connection going away must
// not mark the newer one (possibly on another process) offline.
const UNREGISTER_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** Directory shared by every process connected to the same Redis. */
export class RedisDirectory implements Directory {
  constructor(
    private readonly redis: RedisClientType,
    private readonly opts: { prefix?: string; presenceTtlSeconds?: number; identityTtlSeconds?: number } = {},
  ) {}

  private key(kind: 'identity' | 'online', peerId: string): string {
    return `${this.opts.prefix ?? 'p2ptls:'}${kind}:${peerId}`;
  }

  async register(peerId: string, identity: PublicIdentityJson, connId: string): Promise<void> {
    await this.redis
      .multi()
      .set(this.key('identity', peerId), JSON.stringify(identity), {
        expiration: { type: 'EX', value: this.opts.identityTtlSeconds ?? 7 * 86400 },
      })
      .set(this.key('online', peerId), connId, {
        expiration: { type: 'EX', value: this.opts.presenceTtlSeconds ?? 60 },
      })
      .exec();
  }

  async unregister(peerId: string, connId: string): Promise<void> {
    await this.redis.eval(UNREGISTER_LUA, { keys: [this.key('online', peerId)], arguments: [connId] });
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
    return { identity: parsed, online: typeof online === 'string' };
  }

  async isOnline(peerId: string): Promise<boolean> {
    return (await this.redis.exists(this.key('online', peerId))) === 1;
  }

  async refresh(entries: ReadonlyArray<readonly [string, string]>): Promise<void> {
    if (entries.length === 0) return;
    const ttl = this.opts.presenceTtlSeconds ?? 60;
    const m = this.redis.multi();
    for (const [peerId, connId] of entries) {
      // NX: never overwrite a newer connection's registration (made on another process meanwhile).
      m.set(this.key('online', peerId), connId, { condition: 'NX', expiration: { type: 'EX', value: ttl } });
      m.expire(this.key('online', peerId), ttl);
    }
    await m.exec();
  }

  async close(): Promise<void> {}
}
