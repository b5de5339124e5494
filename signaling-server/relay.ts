/**
 * Hands a relayed message to a peer connected to another process, and learns whether it was taken
 * (issue 17, point 6). Before, a signal went out through the socket.io Redis adapter as a broadcast to
 * the room `peer:<id>` and was acknowledged `ok` whether or not any process held that peer: after a
 * SIGKILL, 228 + 166 signals were acknowledged and lost. Now the sender's process publishes the message
 * to the channel of the process that owns the recipient's presence; that process answers whether it
 * handed it to a connected socket. No subscriber (the process is gone), no presence, a `false` answer or
 * no answer within `timeoutMs` all mean "not delivered": the sender is told `peer_offline`, never `ok`.
 *
 * The owning process also charges the recipient's budgets before it hands a signal over (the per-recipient
 * budget and the "recipient does not read" check), and answers which one refused: charged on the
 * senders' processes, senders spread over three processes got three times a recipient's budget, and a
 * recipient that stopped reading was never noticed by a process that did not hold its socket.
 */
import type { RedisClientType } from 'redis';
import type { RedisDirectory } from './directory.js';

/**
 * What became of a message: handed to a connected socket; no socket of the recipient (here, or anywhere
 * the relay could reach); or, for a signal, refused by the recipient's budget (`over_budget`) or because
 * its connection does not read what it was sent (`not_reading`).
 */
export type Delivery = 'delivered' | 'offline' | 'over_budget' | 'not_reading';

/** Hands `arg` as `event` to a socket of `peerId` on this process, within the recipient's budgets. */
export type LocalDelivery = (peerId: string, event: 'signal' | 'pairing', arg: unknown) => Delivery;

const REFUSED: ReadonlySet<unknown> = new Set<Delivery>(['over_budget', 'not_reading']);

interface DeliverMessage {
  id: number;
  reply: string;
  to: string;
  event: 'signal' | 'pairing';
  arg: unknown;
}

/** Cross-process delivery with confirmation, over Redis pub/sub. */
export class RedisRelay {
  private readonly pending = new Map<number, (result: Delivery) => void>();
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

  /** Delivers to `to` wherever it is connected; `delivered` only once a socket took it. */
  async deliver(to: string, event: 'signal' | 'pairing', arg: unknown): Promise<Delivery> {
    const here = this.opts.deliverLocal(to, event, arg);
    if (here !== 'offline') return here;
    const owner = await this.opts.directory.owner(to);
    const self = this.opts.directory.processId;
    if (!owner || owner.processId === self) return 'offline';
    const id = this.nextId++;
    const msg: DeliverMessage = { id, reply: self, to, event, arg };
    const answered = new Promise<Delivery>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.opts.log?.('no delivery answer in time', { to, processId: owner.processId });
        resolve('offline');
      }, this.opts.timeoutMs ?? 2000);
      this.pending.set(id, (result) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(result);
      });
    });
    const receivers = await this.opts.pub.publish(
      this.channel('deliver', owner.processId),
      JSON.stringify(msg),
    );
    // Nobody subscribed: the owning process is gone (Redis drops a killed process's connections at once).
    if (receivers === 0) this.pending.get(id)?.('offline');
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
    const result: Delivery =
      msg.event === 'signal' || msg.event === 'pairing'
        ? this.opts.deliverLocal(msg.to, msg.event, msg.arg)
        : 'offline';
    // `ok` as before, so that a process of the previous version reads a refusal as "not delivered".
    const answer = {
      id: msg.id,
      ok: result === 'delivered',
      ...(REFUSED.has(result) ? { refused: result } : {}),
    };
    this.opts.pub
      .publish(this.channel('delivered', msg.reply), JSON.stringify(answer))
      .catch((err: unknown) => this.opts.log?.('delivery answer failed', { err }));
  }

  private onAnswer(raw: string): void {
    let answer: { id?: unknown; ok?: unknown; refused?: unknown };
    try {
      answer = JSON.parse(raw) as { id?: unknown; ok?: unknown; refused?: unknown };
    } catch {
      return;
    }
    if (typeof answer?.id !== 'number') return;
    const result: Delivery =
      answer.ok === true
        ? 'delivered'
        : REFUSED.has(answer.refused)
          ? (answer.refused as Delivery)
          : 'offline';
    this.pending.get(answer.id)?.(result);
  }

  /** Answers every waiting delivery `offline` (not confirmed). */
  close(): void {
    for (const settle of [...this.pending.values()]) settle('offline');
  }
}
