/**
 * Who is in a mesh: the paired peers present in its signaling room. Room events and member lists are
 * applied one at a time, in the order they arrived (a member list answered after an event is newer
 * than it, so the queue keeps them in order).
 *
 * A `room:left` for a member with an open connection does not end its membership: that ends when the
 * connection closes (a member that leaves closes its connections; a dead one fails the probe that the
 * `room:left` starts, well before its heartbeat would) or the member is in the room again. A signaling
 * server that restarts tells every room that everyone left, and a running operation must not lose
 * members that only lost the server (PROTOCOL.md §12.1).
 */
import type { PeerId } from '../identity/peer-id.js';
import { logger, shortId } from '../util/log.js';
import type { MeshHost } from './pool.js';
import { ringOrder } from './ring.js';

const debug = logger('mesh');

/** What membership needs from its mesh. */
export interface MembershipContext {
  readonly self: PeerId;
  readonly room: string;
  readonly host: MeshHost;
  isOpen(): boolean;
  isConnected(peerId: PeerId): boolean;
  /** Checks now that a connected member is alive; a dead one's connection closes (`connectionClosed`). */
  probe(peerId: PeerId): void;
  joined(peerId: PeerId): void;
  left(peerId: PeerId): void;
}

export class Membership {
  private readonly set = new Set<PeerId>();
  /** Members the room says left, kept while their connection is open. */
  private readonly leaving = new Set<PeerId>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: MembershipContext) {}

  has(peerId: PeerId): boolean {
    return this.set.has(peerId);
  }

  get size(): number {
    return this.set.size;
  }

  /** The other members, sorted. */
  get list(): PeerId[] {
    return [...this.set].sort();
  }

  /** Members including us, in ring order. */
  get ring(): PeerId[] {
    return ringOrder([this.ctx.self, ...this.set]);
  }

  /** Runs `task` after every membership change queued before it. */
  enqueue(task: () => Promise<void> | void): Promise<void> {
    const run = this.queue.then(() => (this.ctx.isOpen() ? task() : undefined));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Applies a member list from the server: who is not in it left, who is joined. */
  async sync(members: PeerId[]): Promise<void> {
    const present = new Set(members);
    for (const p of [...this.set]) if (!present.has(p)) this.leftRoom(p);
    for (const p of members) await this.add(p);
  }

  /** The room says the member is gone. */
  leftRoom(peerId: PeerId): void {
    if (this.set.has(peerId) && this.ctx.isConnected(peerId)) {
      debug('%s: %s left the room; a member until its connection closes', this.ctx.room, shortId(peerId));
      this.leaving.add(peerId);
      this.ctx.probe(peerId);
      return;
    }
    this.remove(peerId);
  }

  /** The member's connection closed: if the room said it left, now it has. */
  connectionClosed(peerId: PeerId): void {
    if (this.leaving.delete(peerId)) this.enqueue(() => this.remove(peerId)).catch(() => {});
  }

  /** The room says the member is here: it is a member if it is paired with us. */
  async add(peerId: PeerId): Promise<void> {
    this.leaving.delete(peerId);
    if (peerId === this.ctx.self || this.set.has(peerId)) return;
    // Only paired peers are members: anyone may enter a room, nobody else can authenticate to us.
    if (!(await this.ctx.host.peers.lookup(peerId))) return;
    if (!this.ctx.isOpen() || this.set.has(peerId)) return;
    this.set.add(peerId);
    this.ctx.joined(peerId);
  }

  private remove(peerId: PeerId): void {
    this.leaving.delete(peerId);
    if (!this.set.delete(peerId)) return;
    this.ctx.left(peerId);
  }
}
