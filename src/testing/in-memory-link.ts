/**
 * Two in-memory {@link Link}s joined like one WebRTC connection, for tests of dials and connections that
 * must be deterministic: the "network" between them can hold traffic, lose it and die, under the test's
 * control. No sockets, no timers: delivery happens on microtasks, or when the test releases it.
 *
 * Like SCTP under an RTCPeerConnection that is torn down, closing either end drops every record still in
 * flight, in both directions, and the other end sees its link close.
 */
import { fail } from '../errors.js';
import type { Link, LinkStats, LinkTimeline, PeerLinkEvents } from '../transport/peer-link.js';
import { TypedEmitter } from '../util/emitter.js';

type Direction = 'ab' | 'ba';

/** The network between the two ends: what is in flight each way, and what the test does with it. */
export class InMemoryNetwork {
  readonly a: InMemoryLink;
  readonly b: InMemoryLink;
  private readonly inFlight: Record<Direction, Uint8Array[]> = { ab: [], ba: [] };
  private readonly held: Record<Direction, boolean> = { ab: false, ba: false };
  private scheduled: Record<Direction, boolean> = { ab: false, ba: false };
  /** Datagrams are delivered unless this says otherwise. */
  datagramFate: (record: Uint8Array, direction: Direction) => 'deliver' | 'drop' = () => 'deliver';
  /**
   * Bytes of datagrams the sending end's link reports queued, each way ({@link Link.datagramsBuffered}):
   * as a WebRTC stack's datagram channel behind reliable data. Set by the test; delivery is unchanged.
   */
  readonly datagramsQueued: Record<Direction, number> = { ab: 0, ba: 0 };
  private dead = false;

  constructor(options: { maxMessageSize?: number } = {}) {
    this.a = new InMemoryLink(this, 'ab', options.maxMessageSize ?? 256 * 1024);
    this.b = new InMemoryLink(this, 'ba', options.maxMessageSize ?? 256 * 1024);
  }

  /** Both ends open (as when ICE, DTLS and both data channels are up). */
  open(): void {
    this.openReliable();
    this.a.opened();
    this.b.opened();
  }

  /**
   * Only the reliable channels open: records flow both ways (first what {@link InMemoryLink.sendFirst}
   * held), but neither end reports `open` until {@link open}, as a WebRTC link whose datagram channel
   * has not opened yet.
   */
  openReliable(): void {
    this.a.reliableOpened();
    this.b.reliableOpened();
  }

  /** Stops delivering reliable records in one direction (they stay in flight) until {@link release}. */
  hold(direction: Direction): void {
    this.held[direction] = true;
  }

  release(direction: Direction): void {
    this.held[direction] = false;
    this.schedule(direction);
  }

  /** Reliable bytes in flight in one direction. */
  bytesInFlight(direction: Direction): number {
    return this.inFlight[direction].reduce((n, r) => n + r.length, 0);
  }

  /** Records in flight in one direction. */
  recordsInFlight(direction: Direction): number {
    return this.inFlight[direction].length;
  }

  /** The connection dies under both ends (a crash, a NAT timeout): what is in flight is lost. */
  cut(reason = 'cut by the test'): void {
    if (this.dead) return;
    this.dead = true;
    this.inFlight.ab.length = 0;
    this.inFlight.ba.length = 0;
    const error = fail('closed', reason);
    queueMicrotask(() => {
      this.a.closed(error);
      this.b.closed(error);
    });
  }

  /** @internal */
  get isDead(): boolean {
    return this.dead;
  }

  /** @internal */
  sendReliable(direction: Direction, record: Uint8Array): void {
    this.inFlight[direction].push(record.slice());
    this.schedule(direction);
  }

  /** @internal */
  sendDatagram(direction: Direction, record: Uint8Array): void {
    if (this.datagramFate(record, direction) === 'drop') return;
    const to = direction === 'ab' ? this.b : this.a;
    const copy = record.slice();
    queueMicrotask(() => to.receiveDatagram(copy));
  }

  /** Delivers, in order, what is in flight in one direction (unless held), one record per microtask. */
  private schedule(direction: Direction): void {
    if (this.scheduled[direction]) return;
    this.scheduled[direction] = true;
    queueMicrotask(() => this.deliverNext(direction));
  }

  private deliverNext(direction: Direction): void {
    this.scheduled[direction] = false;
    if (this.dead || this.held[direction]) return;
    const record = this.inFlight[direction].shift();
    if (!record) return;
    const from = direction === 'ab' ? this.a : this.b;
    const to = direction === 'ab' ? this.b : this.a;
    to.receiveReliable(record);
    from.delivered();
    this.schedule(direction);
  }
}

/** The SDP of an in-memory end: only its fingerprint line, which is all a dial reads of it (PROTOCOL.md §8). */
function sdpOf(direction: Direction): string {
  return `v=0\r\na=fingerprint:sha-256 ${direction === 'ab' ? 'AA:AA' : 'BB:BB'}\r\n`;
}

/**
 * One end of an {@link InMemoryNetwork}. End `a` is the dialer: like simple-peer's initiator it makes its
 * offer (a signal) as soon as someone listens for signals; end `b` answers an offer it is given. Opening
 * the channels is still the test's call ({@link InMemoryNetwork.open}).
 */
export class InMemoryLink extends TypedEmitter<PeerLinkEvents> implements Link {
  /** The records are kept (delivered later, held, inspected by tests): never write into a sent one. */
  readonly copiesOnSend = false;
  /** `reliable`: only the reliable channel is open ({@link InMemoryNetwork.openReliable}). */
  private state: 'new' | 'reliable' | 'open' | 'closed' = 'new';
  private firstRecords: Uint8Array[] = [];
  private everOpened = false;
  private offered = false;
  readonly timeline: LinkTimeline = { created: performance.now() };
  /** Reliable records handed to this end and not yet closed by it. */
  reliableSent = 0;

  /** @internal */
  constructor(
    private readonly network: InMemoryNetwork,
    private readonly direction: Direction,
    readonly maxMessageSize: number,
  ) {
    super();
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get wasOpened(): boolean {
    return this.everOpened;
  }

  get bufferedAmount(): number {
    return this.network.bytesInFlight(this.direction);
  }

  get datagramsBuffered(): number {
    return this.network.datagramsQueued[this.direction];
  }

  settle(): void {}

  override on<K extends keyof PeerLinkEvents>(
    event: K,
    listener: (value: PeerLinkEvents[K]) => void,
  ): () => void {
    const off = super.on(event, listener);
    if (event === 'signal' && this.direction === 'ab' && !this.offered) {
      this.offered = true;
      queueMicrotask(() => this.emit('signal', { type: 'offer', sdp: sdpOf(this.direction) }));
    }
    return off;
  }

  /** End `b` answers an offer; everything else is ignored (there is no ICE). */
  signal(data: unknown): void {
    if (this.direction !== 'ba' || (data as { type?: unknown } | null)?.type !== 'offer') return;
    queueMicrotask(() => this.emit('signal', { type: 'answer', sdp: sdpOf(this.direction) }));
  }

  fingerprints(): { local: string; remote: string } {
    if (this.state === 'closed') throw fail('closed', 'the link is closed');
    const mine = this.direction === 'ab' ? 'sha-256 AA:AA' : 'sha-256 BB:BB';
    const theirs = this.direction === 'ab' ? 'sha-256 BB:BB' : 'sha-256 AA:AA';
    return { local: mine, remote: theirs };
  }

  async localFingerprint(): Promise<string> {
    return this.fingerprints().local;
  }

  /** In memory there is no DTLS: like node-datachannel, nothing to report beyond the SDP. */
  async remoteCertificate(): Promise<string | undefined> {
    return undefined;
  }

  sendReliable(record: Uint8Array): void {
    if (!this.reliableUp || this.network.isDead) throw fail('closed', 'reliable channel is not open');
    this.reliableSent++;
    this.network.sendReliable(this.direction, record);
  }

  sendFirst(records: Uint8Array[]): void {
    if (this.state === 'closed') throw fail('closed', 'the link is closed');
    this.firstRecords.push(...records);
    if (this.reliableUp && !this.network.isDead) this.flushFirst();
  }

  private get reliableUp(): boolean {
    return this.state === 'reliable' || this.state === 'open';
  }

  private flushFirst(): void {
    const records = this.firstRecords;
    this.firstRecords = [];
    for (const r of records) this.sendReliable(r);
  }

  sendDatagram(record: Uint8Array): boolean {
    if (this.state !== 'open' || this.network.isDead) return false;
    this.network.sendDatagram(this.direction, record);
    return true;
  }

  async stats(): Promise<LinkStats> {
    return {};
  }

  /** Tears the connection down: like destroying an RTCPeerConnection, in-flight records are lost. */
  close(): void {
    if (this.state === 'closed') return;
    this.network.cut('the peer closed the link');
  }

  /** @internal */
  reliableOpened(): void {
    if (this.state !== 'new') return;
    this.state = 'reliable';
    this.timeline.reliableOpen = performance.now();
    if (!this.network.isDead) this.flushFirst();
  }

  /** @internal */
  opened(): void {
    if (this.state !== 'reliable') return;
    this.state = 'open';
    this.everOpened = true;
    this.timeline.open = performance.now();
    this.emit('open', undefined);
  }

  /** @internal */
  closed(error: ReturnType<typeof fail>): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.firstRecords = [];
    this.emit('close', { error });
  }

  /** @internal */
  receiveReliable(record: Uint8Array): void {
    if (this.reliableUp) this.emit('reliable', record);
  }

  /** @internal */
  receiveDatagram(record: Uint8Array): void {
    if (this.state === 'open') this.emit('datagram', record);
  }

  /** @internal */
  delivered(): void {
    this.emit('drain', undefined);
  }
}
