// Runs inside Chromium for bench/browser.ts: one page is the sender, another the receiver. The p2ptls path
// is a Host on the browser's RTCPeerConnection through the real signaling server; the baseline is the raw
// PeerLink (the same simple-peer data channels p2ptls runs on), signalled between the two pages over a
// BroadcastChannel.
import {
  type Connection,
  Identity,
  loopbackOnly,
  openMemoryPeerStore,
  PeerLink,
  PublicIdentity,
  SignalingClient,
  startBrowserHost,
} from '../src/browser.js';
import type { Host } from '../src/host/host.js';
import { webCryptoAead } from '../src/protocol/index.js';
import { fromBase64Url } from '../src/util/bytes.js';
import { FrameAssembler, FrameSplitter } from '../web-demo/src/video.js';
import { RecordRows } from './record-rows.js';

type Kind = 'p2ptls' | 'raw';
const HIGH_WATER = 1024 * 1024;
const VIDEO_DATAGRAM_BYTES = 16_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const epoch = () => performance.timeOrigin + performance.now();

let host: Host | undefined;
let signaling: SignalingClient | undefined;
let conn: Connection | undefined;
let raw: PeerLink | undefined;
let rawOpened: Promise<void> = Promise.resolve();
/** Incoming connections not taken yet, with when they were accepted; and who waits for the next one. */
const accepted: { connection: Connection; at: number }[] = [];
const acceptWaiters: ((a: { connection: Connection; at: number }) => void)[] = [];
/** The raw links of the set-up measurement, until {@link api.closeSetupLinks}. */
const setupLinks: PeerLink[] = [];

/** The next incoming connection (and when the host accepted it, ms since the epoch). */
function nextAccepted(): Promise<{ connection: Connection; at: number }> {
  const ready = accepted.shift();
  return ready ? Promise.resolve(ready) : new Promise((resolve) => acceptWaiters.push(resolve));
}

const rtc = () => ({ name: 'browser', RTCPeerConnection, RTCSessionDescription, RTCIceCandidate });

/** A raw set-up link whose signals go to `peerId` through the signaling client, tagged `tag`. */
function setupLink(peerId: string, tag: string, initiator: boolean): PeerLink {
  const link = new PeerLink({ rtc: rtc(), initiator, candidateFilter: loopbackOnly });
  link.on('signal', (signal) => void signaling!.sendSignal(peerId, { tag, signal }).catch(() => {}));
  setupLinks.push(link);
  return link;
}

/** The signal of a tagged set-up message, or undefined for any other message. */
function taggedSignal(data: unknown, tag: string): unknown {
  const d = data as { tag?: string; signal?: unknown } | null;
  return d?.tag === tag ? d.signal : undefined;
}
/** The video reception in progress ({@link api.startVideo} to {@link api.stopVideo}). */
let videoReceiver:
  | {
      kind: Kind;
      assembler: FrameAssembler;
      latencies: number[];
      off: () => void;
      before: Awaited<ReturnType<Connection['stats']>>['datagrams'] | undefined;
    }
  | undefined;

/** Sent behind a bulk transfer when the other page asks (drainBulk): what came before it has arrived. */
const MARKER = new TextEncoder().encode('drained');
new BroadcastChannel('bench-drain').onmessage = (e: MessageEvent<Kind>) => {
  if (e.data === 'raw') raw?.sendReliable(MARKER);
  else conn?.send(MARKER).catch(() => {});
};

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN);
}

/** Frames a webcam would give at 640×480: a moving scene with noise, encoded once as JPEG (q 0.7). */
async function makeFrames(count: number): Promise<Uint8Array[]> {
  const canvas = new OffscreenCanvas(640, 480);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2d context');
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const g = ctx.createLinearGradient(0, 0, 640, 480);
    g.addColorStop(0, `hsl(${(i * 6) % 360} 60% 50%)`);
    g.addColorStop(1, `hsl(${(i * 6 + 120) % 360} 60% 30%)`);
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, 640, 480);
    const noise = ctx.getImageData(0, 0, 640, 480);
    // Sensor noise on every channel: what keeps real webcam JPEGs at tens of KiB.
    for (let p = 0; p < noise.data.length; p++) {
      if (p % 4 !== 3) noise.data[p] = (noise.data[p] ?? 0) + ((Math.random() * 48) | 0) - 24;
    }
    ctx.putImageData(noise, 0, 0);
    ctx.fillStyle = '#fff';
    ctx.font = '48px sans-serif';
    ctx.fillText(`frame ${i}`, 40 + ((i * 7) % 300), 240);
    const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.7 });
    frames.push(new Uint8Array(await blob.arrayBuffer()));
  }
  return frames;
}

/**
 * Sends `size`-byte TCP-mode messages while `more(bytesSentSoFar)` holds; returns the bytes sent. The raw link gets the flow control p2ptls applies (wait below 1 MiB buffered);
 * p2ptls waits every 64 sends.
 */
async function pump(kind: Kind, size: number, more: (sent: number) => boolean): Promise<number> {
  const msg = new Uint8Array(size);
  let sent = 0;
  let last: Promise<void> = Promise.resolve();
  for (let n = 0; more(sent); n++, sent += size) {
    if (kind === 'raw') {
      const link = raw!;
      while (link.bufferedAmount >= HIGH_WATER) {
        await Promise.race([new Promise((r) => link.once('drain', () => r(undefined))), sleep(5)]);
        link.settle();
      }
      link.sendReliable(msg);
      // Let timers (the video sender) run between bursts, as awaiting p2ptls sends does.
      if (n % 64 === 63) await sleep(0);
    } else {
      last = conn!.send(msg);
      if (n % 64 === 63) await last;
    }
  }
  await last;
  return sent;
}

const api = {
  /**
   * bench:protocol's WebCrypto rows in this page: `runs` alternating pairs of raw AES-GCM seal+open and the
   * same messages through two in-memory sessions (TCP mode, then SLLP), MB/s each; then the same through
   * outputs that copy and deliver at once, as a data channel's (RecordRows.channel), told that they copy
   * and not told (the session then makes a new buffer per record and datagram, as it did before).
   */
  async recordLayer(size: number, count: number, runs: number) {
    const rows = new RecordRows(...(await Promise.all([Identity.generate(), Identity.generate()])));
    const msg = crypto.getRandomValues(new Uint8Array(size));
    const mbs = (t: { ms: number }) => (size * count) / (1024 * 1024) / (t.ms / 1000);
    // A first run of each, so JIT warm-up is not charged to the first pair.
    await rows.raw(webCryptoAead, msg, count);
    await rows.tcp(webCryptoAead, msg, count, 1);
    const rowsOf = {
      tcp: () => rows.tcp(webCryptoAead, msg, count, 1),
      tcpChannel: () => rows.tcpChannel(webCryptoAead, msg, count),
      tcpChannelUntold: () => rows.tcpChannel(webCryptoAead, msg, count, false),
      sllp: () => rows.sllp(webCryptoAead, msg, count),
      sllpChannel: () => rows.sllpChannel(webCryptoAead, msg, count),
      sllpChannelUntold: () => rows.sllpChannel(webCryptoAead, msg, count, false),
    };
    const names = Object.keys(rowsOf) as (keyof typeof rowsOf)[];
    const out = {} as Record<keyof typeof rowsOf, { raw: number[]; ours: number[] }>;
    for (const row of names) out[row] = { raw: [], ours: [] };
    // Round by round, each row right after a raw run of its own: rows compared with each other (told and
    // not told that the output copies) are then measured next to each other too.
    for (let i = 0; i < runs; i++) {
      for (const row of names) {
        out[row].raw.push(mbs(await rows.raw(webCryptoAead, msg, count)));
        out[row].ours.push(mbs(await rowsOf[row]()));
      }
    }
    return out;
  },

  async startHost(opts: { url: string; secret: unknown; peer: unknown; psk: string }) {
    const identity = await Identity.importSecret(opts.secret);
    const peers = await openMemoryPeerStore({ encryption: { mode: 'unencrypted' } });
    await peers.put({ publicIdentity: await PublicIdentity.import(opts.peer), psk: fromBase64Url(opts.psk) });
    signaling = new SignalingClient({ url: opts.url, identity });
    host = await startBrowserHost({ identity, peers, signaling, candidateFilter: loopbackOnly });
    const h = host;
    void (async () => {
      for await (const req of h.incoming())
        req.verify().then(
          (connection) => {
            const a = { connection, at: epoch() };
            const waiter = acceptWaiters.shift();
            if (waiter) waiter(a);
            else accepted.push(a);
          },
          () => {},
        );
    })();
  },
  async dial(peerId: string) {
    conn = await host!.connect(peerId);
  },
  async accept() {
    conn = (await nextAccepted()).connection;
  },
  /**
   * Set-up, p2ptls: dials `peerId` (whose page called {@link acceptTimed}) and closes the connection.
   * Returns when the dial started and when it resolved (ms since the epoch).
   */
  async dialTimed(peerId: string) {
    const t0 = epoch();
    const c = await host!.connect(peerId);
    const at = epoch();
    await c.close();
    return { t0, at };
  },
  /** Set-up, p2ptls: when the next incoming connection was accepted (ms since the epoch). */
  async acceptTimed() {
    const { connection, at } = await nextAccepted();
    await connection.closed;
    return at;
  },
  /**
   * Set-up, raw: a WebRTC connect whose signals go through the same signaling client as p2ptls's. The
   * answering page makes its RTCPeerConnection when the offer arrives, as an application must. Resolves
   * when its link opened (ms since the epoch); call it before {@link rawConnectTimed} on the other page.
   */
  rawAnswerTimed(peerId: string, tag: string) {
    return new Promise<number>((resolve) => {
      let link: PeerLink | undefined;
      const off = signaling!.on('signal', ({ data }) => {
        const signal = taggedSignal(data, tag);
        if (signal === undefined) return;
        if (!link) {
          link = setupLink(peerId, tag, false);
          link.once('open', () => {
            off();
            resolve(epoch());
          });
        }
        link.signal(signal);
      });
    });
  },
  /** Closes the raw set-up's links, once both sides have reported. */
  closeSetupLinks() {
    for (const link of setupLinks.splice(0)) link.close();
  },
  /** Set-up, raw: the dialing side of {@link rawAnswerTimed}; when it started and when its link opened. */
  rawConnectTimed(peerId: string, tag: string) {
    return new Promise<{ t0: number; at: number }>((resolve) => {
      const t0 = epoch();
      const link = setupLink(peerId, tag, true);
      const off = signaling!.on('signal', ({ data }) => {
        const signal = taggedSignal(data, tag);
        if (signal !== undefined) link.signal(signal);
      });
      link.once('open', () => {
        off();
        resolve({ t0, at: epoch() });
      });
    });
  },
  /**
   * Creates the raw PeerLink; signals cross between the pages over a BroadcastChannel. Call it on the
   * responder first (it stays silent until the offer arrives), then on the initiator, then {@link rawReady}.
   */
  rawOpen(initiator: boolean) {
    const inbox = new BroadcastChannel(`raw-${initiator ? 'b' : 'a'}`);
    const outbox = new BroadcastChannel(`raw-${initiator ? 'a' : 'b'}`);
    const link = new PeerLink({
      rtc: rtc(),
      initiator,
      candidateFilter: loopbackOnly,
    });
    link.on('signal', (s) => outbox.postMessage(JSON.stringify(s)));
    inbox.onmessage = (e: MessageEvent<string>) => link.signal(JSON.parse(e.data));
    rawOpened = new Promise<void>((resolve) => link.once('open', () => resolve()));
    raw = link;
  },
  rawReady() {
    return rawOpened;
  },
  /** Sends `total` bytes in `size`-byte messages; returns the start time (ms since the epoch). */
  async sendBulk(kind: Kind, total: number, size: number) {
    const t0 = epoch();
    await pump(kind, size, (sent) => sent < total);
    return t0;
  },
  /** Resolves with the time (ms since the epoch) the last of `total` bytes arrived. */
  receiveBulk(kind: Kind, total: number) {
    return new Promise<number>((resolve) => {
      let received = 0;
      const on = (m: Uint8Array) => {
        received += m.length;
        if (received >= total) {
          off();
          resolve(epoch());
        }
      };
      const off = kind === 'raw' ? raw!.on('reliable', on) : conn!.on('message', on);
    });
  },
  /** Sends `size`-byte messages for `seconds`; returns the bytes sent. */
  sendBulkFor(kind: Kind, seconds: number, size: number) {
    const end = performance.now() + seconds * 1000;
    return pump(kind, size, () => performance.now() < end);
  },
  /**
   * Resolves once the bulk data still in flight has arrived: asks the sender page (over a
   * BroadcastChannel) for a marker message behind it, and reads until the marker comes.
   */
  drainBulk(kind: Kind) {
    return new Promise<void>((resolve) => {
      const on = (m: Uint8Array) => {
        if (m.length !== MARKER.length || !m.every((b, i) => b === MARKER[i])) return;
        off();
        resolve();
      };
      const off = kind === 'raw' ? raw!.on('reliable', on) : conn!.on('message', on);
      new BroadcastChannel('bench-drain').postMessage(kind);
    });
  },
  /** Counts TCP-mode bytes received for `seconds`; MiB/s. */
  async countBulk(kind: Kind, seconds: number) {
    let received = 0;
    const on = (m: Uint8Array) => {
      received += m.length;
    };
    const off = kind === 'raw' ? raw!.on('reliable', on) : conn!.on('message', on);
    await sleep(seconds * 1000 + 500);
    off();
    return received / (1024 * 1024) / seconds;
  },
  /**
   * Streams pre-encoded 640×480 frames at `fps` for `seconds` as the demo does (split over datagrams).
   * Returns, with the counts, how long it actually streamed: on a page busy sending bulk data this call
   * itself may start late, and the receiver must count over the sender's window, not its own.
   */
  async sendVideo(kind: Kind, seconds: number, fps: number) {
    const frames = await makeFrames(30);
    const splitter = new FrameSplitter(VIDEO_DATAGRAM_BYTES);
    const start = performance.now();
    let sent = 0;
    let bytes = 0;
    let pieces = 0;
    /** Pieces refused by a full SLLP send buffer (dropped before the network, as the demo does). */
    let droppedLocally = 0;
    while (performance.now() - start < seconds * 1000) {
      const frame = frames[sent % frames.length]!;
      for (const piece of splitter.split(frame, epoch())) {
        pieces++;
        if (kind === 'raw') {
          if (!raw!.sendDatagram(piece, HIGH_WATER)) droppedLocally++;
        } else {
          void conn!.sendDatagram(piece).then(
            (seq) => {
              if (seq < 0) droppedLocally++;
            },
            () => {},
          );
        }
      }
      sent++;
      bytes += frame.length;
      const next = start + (sent * 1000) / fps;
      await sleep(Math.max(0, next - performance.now()));
    }
    const streamedSeconds = (performance.now() - start) / 1000;
    return { sent, pieces, meanFrameBytes: Math.round(bytes / sent), droppedLocally, streamedSeconds };
  },
  /**
   * Starts reassembling frames; {@link stopVideo} ends it. The receiver counts from before the sender
   * starts until the sender is done (and what it sent has had time to arrive), so that a sender that
   * starts late is not charged with frames the receiver stopped listening for.
   */
  async startVideo(kind: Kind) {
    const assembler = new FrameAssembler();
    const latencies: number[] = [];
    const on = (data: Uint8Array) => {
      const frame = assembler.accept(data);
      if (frame) latencies.push(epoch() - frame.captureMs);
    };
    const off = kind === 'raw' ? raw!.on('datagram', on) : conn!.datagrams.on('datagram', (d) => on(d.data));
    const before = kind === 'p2ptls' ? (await conn!.stats()).datagrams : undefined;
    videoReceiver = { kind, assembler, latencies, off, before };
  },
  /**
   * Waits `graceMs` for datagrams still in flight, stops reassembling, and returns the frames shown per
   * second of the sender's `streamedSeconds` with capture-to-reassembled latency percentiles.
   */
  async stopVideo(streamedSeconds: number, graceMs: number) {
    const { kind, assembler, latencies, off, before } = videoReceiver!;
    videoReceiver = undefined;
    await sleep(graceMs);
    off();
    const after = kind === 'p2ptls' ? (await conn!.stats()).datagrams : undefined;
    // Datagrams that reached p2ptls and that it dropped (forged, replayed, too late, unread): any other
    // missing piece was lost below it, in SCTP or the network.
    const dropped = (d: typeof before) =>
      d ? Object.values(d.dropped as Record<string, number>).reduce((a, b) => a + b, 0) : 0;
    const droppedHere = dropped(after) - dropped(before);
    latencies.sort((a, b) => a - b);
    return {
      frames: assembler.stats.framesCompleted,
      pieces: assembler.stats.piecesReceived,
      incomplete: assembler.stats.framesIncomplete,
      late: assembler.stats.framesLate,
      fps: assembler.stats.framesCompleted / streamedSeconds,
      p50: quantile(latencies, 0.5),
      p95: quantile(latencies, 0.95),
      droppedHere,
    };
  },
};

export type BrowserBenchApi = typeof api;
(globalThis as { browserBench?: BrowserBenchApi }).browserBench = api;
(globalThis as { __ready?: boolean }).__ready = true;
