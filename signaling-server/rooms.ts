/**
 * Room membership changes, coalesced per tick before they are broadcast (issue 17, point 4: 20
 * join/leave spammers in a 61-member room made ~57,600 `room:joined`/`room:left` events per second at
 * the members, one broadcast per change). Within a tick a join and a leave of the same peer cancel out,
 * so a spammer that churns costs the members nothing, and what is left goes out once per tick as the
 * same `room:joined` / `room:left` events as before (the wire is unchanged).
 */

export type RoomChange = 'joined' | 'left';

/** Sends one net change to the room's other members. */
export type RoomChangeSink = (room: string, peerId: string, change: RoomChange) => void;

export class RoomChanges {
  /** room → peerId → the net change not yet sent. */
  private readonly pending = new Map<string, Map<string, RoomChange>>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly tickMs: number,
    private readonly sink: RoomChangeSink,
  ) {}

  add(room: string, peerId: string, change: RoomChange): void {
    let changes = this.pending.get(room);
    if (!changes) {
      changes = new Map();
      this.pending.set(room, changes);
    }
    const earlier = changes.get(peerId);
    // The opposite change is still unsent: the members never saw it, so neither need be sent.
    if (earlier !== undefined && earlier !== change) changes.delete(peerId);
    else changes.set(peerId, change);
    this.timer ??= setTimeout(() => this.flush(), this.tickMs);
  }

  /** Sends every pending change now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const pending = [...this.pending];
    this.pending.clear();
    for (const [room, changes] of pending) {
      for (const [peerId, change] of changes) this.sink(room, peerId, change);
    }
  }

  /** Drops pending changes (the server is closing and disconnects everyone anyway). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }
}
