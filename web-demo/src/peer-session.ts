// One paired peer's panel: the live p2ptls connection (either direction), chat and files over TCP mode,
// webcam over SLLP mode, and the connection's stats.
import type { Connection } from '../../src/host/connection.js';
import type { ReconnectingConnection } from '../../src/host/reconnecting.js';
import type { CloseInfo } from '../../src/protocol/session.js';
import {
  type Control,
  decodeAppMessage,
  encodeControl,
  encodeFileChunk,
  IncomingFile,
  MAX_FILE_BYTES,
  sha256OfBlob,
} from './app-protocol.js';
import { CameraCapture, FrameRenderer, VIDEO_HEIGHT, VIDEO_WIDTH } from './camera.js';
import { explain, formatBytes, formatRate, h, notify, short } from './ui.js';
import { FrameAssembler, FrameSplitter, VIDEO_MAGIC } from './video.js';

/** Bytes per file chunk: large enough to keep the channel busy, small enough for a smooth progress bar. */
const FILE_CHUNK_BYTES = 256 * 1024;
/** Pieces of video frames stay well under the SCTP message size every browser accepts. */
const VIDEO_DATAGRAM_BYTES = 16_000;
/** Chat lines kept on the page. */
const MAX_CHAT_LINES = 500;
/** Files a peer may have in flight to us at once (each is held in memory until verified). */
const MAX_INCOMING_FILES = 4;

export type SessionStatus = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

interface Transfer {
  readonly row: HTMLElement;
  readonly bar: HTMLProgressElement;
  readonly note: HTMLElement;
}

export class PeerSession {
  readonly panel: HTMLElement;
  status: SessionStatus = 'idle';
  connection: Connection | undefined;
  private keeper: ReconnectingConnection | undefined;
  private readonly statusEl = h(
    'span',
    { class: 'status idle', 'data-testid': 'conn-status' },
    'not connected',
  );
  private readonly chatLog = h('ol', { class: 'chat-log', 'data-testid': 'chat-log', 'aria-live': 'polite' });
  private readonly chatInput = h('input', {
    type: 'text',
    placeholder: 'Message',
    maxlength: 4000,
    'aria-label': 'Message',
  });
  private readonly fileInput = h('input', { type: 'file', 'aria-label': 'File to send' });
  private readonly transfers = h('ul', { class: 'transfers', 'data-testid': 'transfers' });
  private readonly remoteCanvas = h('canvas', {
    width: VIDEO_WIDTH,
    height: VIDEO_HEIGHT,
    'data-testid': 'remote-video',
  });
  private readonly cameraButton = h(
    'button',
    { class: 'primary', 'data-testid': 'camera-toggle' },
    'Start camera',
  );
  private readonly videoNote = h(
    'span',
    { class: 'muted', 'data-testid': 'video-note' },
    "The peer's camera is off",
  );
  private readonly connectButton = h('button', { class: 'primary', 'data-testid': 'connect' }, 'Connect');
  private readonly statEls = new Map<string, HTMLElement>();
  private readonly incomingFiles = new Map<number, { file: IncomingFile; transfer: Transfer }>();
  private readonly outgoingFiles = new Map<number, { transfer: Transfer; done: (ok: boolean) => void }>();
  private nextFileId = 1;
  private readonly assembler = new FrameAssembler();
  private readonly renderer = new FrameRenderer(this.remoteCanvas);
  private camera: CameraCapture | undefined;
  private splitter: FrameSplitter | undefined;
  private framesSent = 0;
  /**
   * What the peer last said about its camera: `unknown` until it says (a peer that never sends the control
   * message, such as a Node worker, still has its frames shown), `off` drops frames still in flight.
   */
  private peerVideo: 'unknown' | 'on' | 'off' = 'unknown';
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private last = { at: performance.now(), frames: 0, bytesReceived: 0, framesSent: 0 };

  constructor(
    readonly peerId: string,
    private readonly actions: {
      connect(): Promise<void>;
      disconnect(): Promise<void>;
      changed(): void;
    },
  ) {
    const stat = (key: string, label: string) => {
      const value = h('b', { 'data-testid': `stat-${key}` }, '–');
      this.statEls.set(key, value);
      return h('div', { class: 'stat' }, h('span', {}, label), value);
    };
    this.connectButton.addEventListener('click', () => {
      void (this.status === 'idle' || this.status === 'closed' ? actions.connect() : actions.disconnect());
    });
    this.cameraButton.addEventListener('click', () => void this.toggleCamera());
    this.panel = h(
      'section',
      { class: 'session', 'data-peer': peerId, 'data-testid': 'session' },
      h(
        'header',
        { class: 'session-head' },
        h('div', {}, h('h2', {}, `Peer ${short(peerId)}`), h('code', { class: 'peer-id' }, peerId)),
        h('div', { class: 'session-actions' }, this.statusEl, this.connectButton),
      ),
      h(
        'div',
        { class: 'stats', 'data-testid': 'stats' },
        stat('rtt', 'RTT'),
        stat('candidate', 'Path'),
        stat('fps', 'Video fps'),
        stat('frames', 'Frames shown'),
        stat('throughput', 'Receiving'),
        stat('loss', 'Datagram loss'),
        stat('latency', 'Frame age'),
        stat('sent', 'Frames sent'),
      ),
      h(
        'div',
        { class: 'cards' },
        h(
          'div',
          { class: 'card chat' },
          h('h3', {}, 'Chat ', h('small', {}, 'TCP mode: reliable, ordered')),
          this.chatLog,
          h(
            'form',
            {
              class: 'row',
              onsubmit: (e: Event) => {
                e.preventDefault();
                void this.sendChat();
              },
            },
            this.chatInput,
            h('button', { type: 'submit', class: 'primary', 'data-testid': 'chat-send' }, 'Send'),
          ),
        ),
        h(
          'div',
          { class: 'card files' },
          h('h3', {}, 'Files ', h('small', {}, 'TCP mode, SHA-256 checked')),
          h(
            'div',
            { class: 'row' },
            this.fileInput,
            h(
              'button',
              { class: 'primary', 'data-testid': 'file-send', onclick: () => void this.sendSelectedFile() },
              'Send file',
            ),
          ),
          this.transfers,
        ),
        h(
          'div',
          { class: 'card video' },
          h('h3', {}, 'Webcam ', h('small', {}, 'SLLP mode: unreliable, late frames dropped')),
          h(
            'div',
            { class: 'screens' },
            this.remoteCanvas,
            h('div', { class: 'preview', 'data-testid': 'local-preview' }),
          ),
          h('div', { class: 'row' }, this.cameraButton, this.videoNote),
        ),
      ),
    );
    this.setStatus('idle');
  }

  /** Follows a {@link ReconnectingConnection} we dialed: each new connection is attached as it comes. */
  keep(keeper: ReconnectingConnection): void {
    this.keeper = keeper;
    keeper.on('reconnecting', ({ error }) => {
      this.setStatus('reconnecting', error ? explain(error) : undefined);
    });
    keeper.on('reconnected', () => {
      if (keeper.connection) this.attach(keeper.connection);
    });
    keeper.on('close', (info) => {
      if (this.keeper === keeper) this.keeper = undefined;
      if (!this.connection?.isOpen) this.closed(info);
    });
    if (keeper.connection) this.attach(keeper.connection);
  }

  /** Uses `conn` (dialed or accepted) from now on. */
  attach(conn: Connection): void {
    this.connection = conn;
    // A new connection: the peer says again whether its camera runs.
    this.setPeerVideo('unknown');
    this.splitter = new FrameSplitter(Math.min(VIDEO_DATAGRAM_BYTES, conn.datagrams.maxSize));
    conn.on('message', (m) => void this.onMessage(m));
    conn.datagrams.on('datagram', (d) => this.onDatagram(d.data));
    conn.on('close', (info) => {
      if (this.connection !== conn) return;
      if (this.keeper) this.setStatus('reconnecting', info.error ? explain(info.error) : 'connection lost');
      else this.closed(info);
      if (info.error) notify(`Connection to ${short(this.peerId)} closed: ${explain(info.error)}`, 'error');
    });
    this.setStatus('connected');
    notify(`Connected to ${short(this.peerId)}`, 'ok');
    if (this.camera?.running) void this.sendControl({ type: 'video', on: true });
    clearInterval(this.statsTimer);
    this.statsTimer = setInterval(() => void this.updateStats(), 1000);
  }

  connecting(): void {
    this.setStatus('connecting');
  }

  /** Ends the session for good (disconnect, peer removed). */
  async close(reason: string): Promise<void> {
    this.camera?.stop();
    const keeper = this.keeper;
    this.keeper = undefined;
    if (keeper) await keeper.close(0, reason);
    else if (this.connection?.isOpen) await this.connection.close(0, reason);
    clearInterval(this.statsTimer);
    this.setStatus('closed', reason);
  }

  private closed(info: CloseInfo): void {
    clearInterval(this.statsTimer);
    this.setStatus(
      'closed',
      info.error ? explain(info.error) : info.reason || (info.byPeer ? 'closed by peer' : 'closed'),
    );
  }

  private setStatus(status: SessionStatus, detail?: string): void {
    this.status = status;
    const words: Record<SessionStatus, string> = {
      idle: 'not connected',
      connecting: 'connecting…',
      connected: 'connected, end-to-end encrypted',
      reconnecting: 'reconnecting…',
      closed: 'disconnected',
    };
    // Without a connection no frame is live: the last one is not left on screen.
    if (status !== 'connected') this.renderer.clear();
    this.statusEl.className = `status ${status}`;
    this.statusEl.textContent = detail ? `${words[status]} — ${detail}` : words[status];
    this.connectButton.textContent = status === 'idle' || status === 'closed' ? 'Connect' : 'Disconnect';
    const usable = status === 'connected';
    for (const el of this.panel?.querySelectorAll<HTMLButtonElement | HTMLInputElement>(
      '.card button, .card input',
    ) ?? []) {
      el.disabled = !usable;
    }
    this.actions.changed();
  }

  private async sendControl(message: Control): Promise<void> {
    const conn = this.connection;
    if (!conn?.isOpen) throw new Error('not connected');
    await conn.send(encodeControl(message));
  }

  private async sendChat(): Promise<void> {
    const text = this.chatInput.value.trim();
    if (!text) return;
    try {
      await this.sendControl({ type: 'chat', id: crypto.randomUUID(), text });
      this.chatInput.value = '';
      this.addChat('me', text);
    } catch (err) {
      notify(`Message not sent: ${explain(err)}`, 'error');
    }
  }

  private addChat(who: 'me' | 'peer', text: string): void {
    // A long session (or a chatty peer) must not grow the page without bound.
    while (this.chatLog.childElementCount >= MAX_CHAT_LINES) this.chatLog.firstElementChild?.remove();
    this.chatLog.append(
      h(
        'li',
        { class: who },
        h('span', { class: 'who' }, who === 'me' ? 'You' : short(this.peerId)),
        h('span', { class: 'text' }, text),
      ),
    );
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  private transferRow(direction: '↑' | '↓', name: string, size: number): Transfer {
    const bar = h('progress', { max: Math.max(size, 1), value: 0 });
    const note = h(
      'span',
      { class: 'note', 'data-testid': 'transfer-note' },
      direction === '↑' ? 'hashing…' : 'receiving…',
    );
    const row = h(
      'li',
      { 'data-testid': 'transfer' },
      h(
        'div',
        { class: 'row' },
        h('span', { class: 'file-name' }, `${direction} ${name}`),
        h('span', {}, formatBytes(size)),
      ),
      bar,
      note,
    );
    this.transfers.prepend(row);
    return { row, bar, note };
  }

  private async sendSelectedFile(): Promise<void> {
    const file = this.fileInput.files?.[0];
    if (!file) {
      notify('Choose a file first', 'error');
      return;
    }
    if (file.size > MAX_FILE_BYTES) {
      notify(`${file.name} is larger than the demo's ${formatBytes(MAX_FILE_BYTES)} limit`, 'error');
      return;
    }
    const transfer = this.transferRow('↑', file.name, file.size);
    try {
      // Hashed, then sent, slice by slice: a large file is never in memory whole.
      const sha256 = await sha256OfBlob(file);
      const id = this.nextFileId++;
      const verified = new Promise<boolean>((done) => this.outgoingFiles.set(id, { transfer, done }));
      const started = performance.now();
      await this.sendControl({
        type: 'file-offer',
        id,
        name: file.name,
        mime: file.type,
        size: file.size,
        sha256,
      });
      for (let offset = 0; offset < file.size; offset += FILE_CHUNK_BYTES) {
        const slice = new Uint8Array(await file.slice(offset, offset + FILE_CHUNK_BYTES).arrayBuffer());
        const conn = this.connection;
        if (!conn?.isOpen) throw new Error('the connection closed during the transfer');
        await conn.send(encodeFileChunk(id, offset, slice));
        transfer.bar.value = offset + slice.length;
        const rate = formatRate((transfer.bar.value / (performance.now() - started)) * 1000);
        transfer.note.textContent = `sending… ${rate}`;
      }
      transfer.note.textContent = 'sent, waiting for the peer to check it…';
      const ok = await verified;
      const seconds = (performance.now() - started) / 1000;
      transfer.row.classList.add(ok ? 'ok' : 'failed');
      transfer.note.textContent = ok
        ? `delivered and verified by the peer (SHA-256 ${sha256.slice(0, 16)}…) in ${seconds.toFixed(1)} s`
        : 'the peer could not verify the file';
    } catch (err) {
      transfer.row.classList.add('failed');
      transfer.note.textContent = `failed: ${explain(err)}`;
    }
  }

  private async onMessage(bytes: Uint8Array): Promise<void> {
    let message: ReturnType<typeof decodeAppMessage>;
    try {
      message = decodeAppMessage(bytes);
    } catch (err) {
      notify(`${short(this.peerId)} sent a message the demo does not understand: ${explain(err)}`, 'error');
      return;
    }
    switch (message.type) {
      case 'chat':
        this.addChat('peer', message.text);
        return;
      case 'video':
        this.setPeerVideo(message.on ? 'on' : 'off');
        return;
      case 'file-offer':
        this.onFileOffer(message);
        return;
      case 'file-chunk':
        await this.onFileChunk(message);
        return;
      case 'file-result': {
        const out = this.outgoingFiles.get(message.id);
        this.outgoingFiles.delete(message.id);
        out?.done(message.ok);
        return;
      }
    }
  }

  private onFileOffer(offer: Extract<Control, { type: 'file-offer' }>): void {
    if (this.incomingFiles.has(offer.id) || this.incomingFiles.size >= MAX_INCOMING_FILES) {
      void this.sendControl({
        type: 'file-result',
        id: offer.id,
        ok: false,
        reason: 'too many transfers',
      }).catch(() => {});
      return;
    }
    const entry = { file: new IncomingFile(offer), transfer: this.transferRow('↓', offer.name, offer.size) };
    this.incomingFiles.set(offer.id, entry);
    if (offer.size === 0) void this.finishFile(offer.id);
  }

  private async onFileChunk(chunk: Extract<ReturnType<typeof decodeAppMessage>, { type: 'file-chunk' }>) {
    const entry = this.incomingFiles.get(chunk.id);
    if (!entry) {
      notify(`${short(this.peerId)} sent data for an unknown file ${chunk.id}`, 'error');
      return;
    }
    try {
      entry.file.add(chunk);
    } catch (err) {
      this.fileFailed(chunk.id, err);
      return;
    }
    entry.transfer.bar.value = entry.file.received;
    if (entry.file.complete) await this.finishFile(chunk.id);
  }

  private async finishFile(id: number): Promise<void> {
    const entry = this.incomingFiles.get(id);
    if (!entry) return;
    try {
      const { blob, sha256 } = await entry.file.finish();
      this.incomingFiles.delete(id);
      const { offer } = entry.file;
      const url = URL.createObjectURL(new Blob([blob], { type: offer.mime || 'application/octet-stream' }));
      entry.transfer.row.classList.add('ok');
      entry.transfer.note.replaceChildren(
        `SHA-256 verified ✓ ${sha256.slice(0, 16)}… `,
        h('a', { href: url, download: offer.name, 'data-testid': 'download' }, 'Save'),
      );
      entry.transfer.row.dataset.sha256 = sha256;
      await this.sendControl({ type: 'file-result', id, ok: true, sha256 });
    } catch (err) {
      this.fileFailed(id, err);
    }
  }

  private fileFailed(id: number, err: unknown): void {
    const entry = this.incomingFiles.get(id);
    this.incomingFiles.delete(id);
    if (entry) {
      entry.transfer.row.classList.add('failed');
      entry.transfer.note.textContent = `rejected: ${explain(err)}`;
    }
    void this.sendControl({ type: 'file-result', id, ok: false, reason: explain(err) }).catch(() => {});
  }

  private setPeerVideo(state: 'unknown' | 'on' | 'off'): void {
    this.peerVideo = state;
    this.videoNote.textContent = state === 'on' ? "Live: the peer's camera" : "The peer's camera is off";
    // Its last frame must not stay on screen as if it were live.
    if (state !== 'on') this.renderer.clear();
  }

  private onDatagram(data: Uint8Array): void {
    if (data[0] !== VIDEO_MAGIC || this.peerVideo === 'off') return;
    try {
      const frame = this.assembler.accept(data);
      if (frame) this.renderer.show(frame);
    } catch {
      // Counted by the assembler's stats only when well-formed; garbage from an authenticated peer is
      // its bug and is simply not shown.
    }
  }

  private async toggleCamera(): Promise<void> {
    if (this.camera?.running) {
      this.camera.stop();
      this.cameraButton.textContent = 'Start camera';
      this.panel.querySelector('.preview')?.replaceChildren();
      await this.sendControl({ type: 'video', on: false }).catch(() => {});
      return;
    }
    this.camera = new CameraCapture((jpeg, captureMs) => this.sendFrame(jpeg, captureMs), {
      fps: 30,
      quality: 0.7,
    });
    try {
      await this.camera.start();
    } catch (err) {
      notify(`Camera unavailable: ${explain(err)}`, 'error');
      return;
    }
    this.panel.querySelector('.preview')?.replaceChildren(this.camera.video);
    this.cameraButton.textContent = 'Stop camera';
    await this.sendControl({ type: 'video', on: true }).catch(() => {});
  }

  private sendFrame(jpeg: Uint8Array, captureMs: number): void {
    const conn = this.connection;
    if (!conn?.isOpen || !this.splitter) return;
    for (const piece of this.splitter.split(jpeg, captureMs)) void conn.sendDatagram(piece).catch(() => {});
    this.framesSent++;
  }

  private async updateStats(): Promise<void> {
    const conn = this.connection;
    if (!conn?.isOpen) return;
    const s = await conn.stats();
    const now = performance.now();
    const seconds = (now - this.last.at) / 1000;
    const a = this.assembler.stats;
    const set = (key: string, text: string) => {
      const el = this.statEls.get(key);
      if (el) el.textContent = text;
    };
    const rtt = s.rttMs ?? s.heartbeatRttMs;
    set('rtt', rtt === undefined ? '–' : `${rtt.toFixed(1)} ms`);
    set(
      'candidate',
      s.localCandidateType ? `${s.localCandidateType} ↔ ${s.remoteCandidateType ?? '?'}` : '–',
    );
    set('fps', ((this.renderer.shown - this.last.frames) / seconds).toFixed(1));
    set('frames', String(this.renderer.shown));
    const received = s.bytesReceived ?? 0;
    set('throughput', formatRate((received - this.last.bytesReceived) / seconds));
    const lost = a.piecesLost + s.datagrams.dropped.invalid + s.datagrams.dropped.replay;
    const total = a.piecesReceived + lost;
    set('loss', total === 0 ? '–' : `${((lost / total) * 100).toFixed(2)} % (${lost}/${total})`);
    set(
      'latency',
      this.renderer.lastLatencyMs === undefined ? '–' : `${this.renderer.lastLatencyMs.toFixed(0)} ms`,
    );
    set('sent', `${this.framesSent} (${((this.framesSent - this.last.framesSent) / seconds).toFixed(1)}/s)`);
    this.last = {
      at: now,
      frames: this.renderer.shown,
      bytesReceived: received,
      framesSent: this.framesSent,
    };
  }
}
