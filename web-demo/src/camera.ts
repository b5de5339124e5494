// The webcam side of the demo: capture frames from getUserMedia as JPEG, and draw received frames.
import type { Frame } from './video.js';

export const VIDEO_WIDTH = 640;
export const VIDEO_HEIGHT = 480;

/** Captures the camera at up to `fps` frames per second and hands each one over as JPEG bytes. */
export class CameraCapture {
  private stream: MediaStream | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private busy = false;
  private readonly canvas = new OffscreenCanvas(VIDEO_WIDTH, VIDEO_HEIGHT);
  readonly video = document.createElement('video');

  constructor(
    private readonly onFrame: (jpeg: Uint8Array, captureMs: number) => void,
    private readonly options: { fps: number; quality: number },
  ) {
    this.video.muted = true;
    this.video.playsInline = true;
  }

  get running(): boolean {
    return this.stream !== undefined;
  }

  async start(): Promise<void> {
    this.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: VIDEO_WIDTH, height: VIDEO_HEIGHT, frameRate: this.options.fps },
      audio: false,
    });
    this.video.srcObject = this.stream;
    await this.video.play();
    this.tick();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = undefined;
    this.video.srcObject = null;
  }

  private tick(): void {
    if (!this.stream) return;
    const started = performance.now();
    this.timer = setTimeout(() => this.tick(), 1000 / this.options.fps);
    // Encoding slower than the frame rate: skip frames rather than queue them (live video).
    if (this.busy) return;
    this.busy = true;
    void this.capture(started).finally(() => {
      this.busy = false;
    });
  }

  private async capture(started: number): Promise<void> {
    const ctx = this.canvas.getContext('2d');
    if (!ctx || this.video.readyState < 2) return;
    ctx.drawImage(this.video, 0, 0, VIDEO_WIDTH, VIDEO_HEIGHT);
    const blob = await this.canvas.convertToBlob({ type: 'image/jpeg', quality: this.options.quality });
    if (!this.stream) return;
    this.onFrame(new Uint8Array(await blob.arrayBuffer()), performance.timeOrigin + started);
  }
}

/** Draws received frames on a canvas; a frame that arrives while the previous one decodes replaces it. */
export class FrameRenderer {
  private decoding = false;
  /** Bumped by {@link clear}: a decode that started before it is not drawn. */
  private generation = 0;
  private pending: Frame | undefined;
  shown = 0;
  decodeErrors = 0;
  /** Capture-to-screen time of the last frame shown (meaningful when both clocks agree). */
  lastLatencyMs: number | undefined;

  constructor(private readonly canvas: HTMLCanvasElement) {}

  show(frame: Frame): void {
    this.pending = frame;
    if (!this.decoding) void this.drain();
  }

  /** Blanks the canvas; a frame still being decoded is not drawn. */
  clear(): void {
    this.pending = undefined;
    this.generation++;
    this.canvas.getContext('2d')?.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.canvas.dataset.frame = 'none';
  }

  private async drain(): Promise<void> {
    this.decoding = true;
    while (this.pending) {
      const frame = this.pending;
      this.pending = undefined;
      const generation = this.generation;
      try {
        const bitmap = await createImageBitmap(new Blob([frame.data as Uint8Array<ArrayBuffer>]));
        if (generation !== this.generation) {
          bitmap.close();
          continue;
        }
        const ctx = this.canvas.getContext('2d');
        ctx?.drawImage(bitmap, 0, 0, this.canvas.width, this.canvas.height);
        bitmap.close();
        this.canvas.dataset.frame = String(frame.id);
        this.shown++;
        this.lastLatencyMs = performance.timeOrigin + performance.now() - frame.captureMs;
      } catch {
        // A frame that authenticated but does not decode is the sender's bug; count it, keep going.
        this.decodeErrors++;
      }
    }
    this.decoding = false;
  }
}
