/**
 * Hands a relayed message to a peer connected to another process, and learns whether it was taken
 * (issue 17, point 6). Before, a signal went out through the socket.io Redis adapter as a broadcast to
 * the room `peer:<id>` and was acknowledged `ok` whether or not any process held that peer: after a
 * SIGKILL, 228 + 166 signals were acknowledged and lost. Now the sender's process publishes the message
 * to the channel of the process that owns the recipient's presence; that process answers whether it
 * handed it to a connected socket. No subscriber (the process is gone), no presence, a `false` answer or
 * no answer within `timeoutMs` all mean "not delivered": the sender is told `peer_offline`, never `ok`.
 */
import type { RedisClientType } from 'redis';
import type { RedisDirectory } from './directory.js';

/** Hands `arg` as `event` to a socket of `peerId` on this process; false when none is connected. */
export type LocalDelivery = (peerId: string, event: 'signal' | 'pairing', arg: unknown) => boolean;

interface DeliverMessage {
  id: number;
  reply: string;
  to: string;
  event: 'signal' | 'pairing';
  arg: unknown;
}

/** Cross-process delivery with confirmation, over Redis pub/sub. */
export class RedisRelay {
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private readonly listening = new Set<string>();
  private nextId = 1;

  constructor(
    private readonly opts: {
      pub: RedisClientType;
      /** A connection of its own: subscriptions put it in subscriber mode. */
      sub: RedisClientType;
      directory: RedisDirectory;
      prefix: string;
      deliverLocal: LocalDelivery;
      /** How long to wait for the owning process's answer. Default 2000 ms. */
      timeoutMs?: number;
      log?: (msg: string, fields: Record<string, unknown>) => void;
    },
  ) {}

  private channel(kind: 'deliver' | 'delivered', processId: string): string {
    return `${this.opts.prefix}${kind}:${processId}`;
  }

  /** Listens for deliveries and answers addressed to `processId` (again after a fence, for the new id). */
  async listen(processId: string): Promise<void> {
    if (this.listening.has(processId)) return;
    this.listening.add(processId);
    await this.opts.sub.subscribe(this.channel('deliver', processId), (raw) => this.onDeliver(raw));
    await this.opts.sub.subscribe(this.channel('delivered', processId), (raw) => this.onAnswer(raw));
  }

  /** Delivers to `to` wherever it is connected; true only once a socket took it. */
  async deliver(to: string, event: 'signal' | 'pairing', arg: unknown): Promise<boolean> {
    if (this.opts.deliverLocal(to, event, arg)) return true;
    const owner = await this.opts.directory.owner(to);
    const self = this.opts.directory.processId;
    if (!owner || owner.processId === self) return false;
    const id = this.nextId++;
    const msg: DeliverMessage = { id, reply: self, to, event, arg };
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.opts.log?.('no delivery answer in time', { to, processId: owner.processId });
        resolve(false);
      }, this.opts.timeoutMs ?? 2000);
      this.pending.set(id, (ok) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(ok);
      });
    });
    const receivers = await this.opts.pub.publish(
      this.channel('deliver', owner.processId),
      JSON.stringify(msg),
    );
    // Nobody subscribed: the owning process is gone (Redis drops a killed process's connections at once).
    if (receivers === 0) this.pending.get(id)?.(false);
    return answered;
  }

  private onDeliver(raw: string): void {
    let msg: DeliverMessage;
    try {
      msg = JSON.parse(raw) as DeliverMessage;
    } catch {
      return;
    }
    if (typeof msg?.id !== 'number' || typeof msg.reply !== 'string' || typeof msg.to !== 'string') return;
    const ok =
      (msg.event === 'signal' || msg.event === 'pairing') &&
      this.opts.deliverLocal(msg.to, msg.event, msg.arg);
    this.opts.pub
      .publish(this.channel('delivered', msg.reply), JSON.stringify({ id: msg.id, ok }))
      .catch((err: unknown) => this.opts.log?.('delivery answer failed', { err }));
  }

  private onAnswer(raw: string): void {
    let answer: { id?: unknown; ok?: unknown };
    try {
      answer = JSON.parse(raw) as { id?: unknown; ok?: unknown };
    } catch {
      return;
    }
    if (typeof answer?.id === 'number') this.pending.get(answer.id)?.(answer.ok === true);
  }

  /** Answers every waiting delivery `false` (not confirmed). */
  close(): void {
    for (const settle of [...this.pending.values()]) settle(false);
  }
}
