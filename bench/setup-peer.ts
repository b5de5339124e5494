/**
 * The responding peer of bench:transport's two-process set-up (`--only setup --processes 2`), run in its
 * own process as a peer on another machine would be: a p2ptls Host that accepts the parent's dials, and
 * a raw WebRTC responder for the baseline, both on the same signaling client. It reports over IPC when
 * each side is done, as `performance.timeOrigin + performance.now()` (the same clock in both processes
 * of one machine).
 *
 * Parent → child: {@link SetupPeerInit} once, then `{ type: 'close-raw', tag }` after each raw trial.
 * Child → parent: `{ type: 'ready' }`, `{ type: 'accepted', at }` per connection it authenticated,
 * `{ type: 'raw-open', tag, at }` per raw link open, `{ type: 'error', message }` on a refused dial.
 */
import type { SetupTimings } from '../src/host/connection-types.js';
import {
  Identity,
  PublicIdentity,
  type PublicIdentityJson,
  type SecretIdentityJson,
} from '../src/identity/index.js';
import { type NodeRtcBackend, nodeRtc } from '../src/runtime/node-rtc.js';
import { PeerLink } from '../src/transport/peer-link.js';
import { loopbackOnly } from '../src/transport/rtc.js';
import { startBenchHost } from './bench-host.js';

export interface SetupPeerInit {
  type: 'init';
  url: string;
  backend: NodeRtcBackend;
  webcrypto: boolean;
  identity: SecretIdentityJson;
  peer: PublicIdentityJson;
  /** base64 */
  psk: string;
}

export type SetupPeerReport =
  | { type: 'ready' }
  | { type: 'accepted'; at: number; setup: SetupTimings | undefined }
  | { type: 'raw-open'; tag: string; at: number }
  | { type: 'error'; message: string };

const now = () => performance.timeOrigin + performance.now();
const report = (r: SetupPeerReport) => process.send?.(r);

async function start(init: SetupPeerInit): Promise<void> {
  const me = await Identity.importSecret(init.identity);
  const other = await PublicIdentity.import(init.peer);
  const rtc = await nodeRtc(init.backend, { bindAddress: '127.0.0.1' });
  const psk = new Uint8Array(Buffer.from(init.psk, 'base64'));
  const { host, signaling } = await startBenchHost({
    url: init.url,
    rtc,
    me,
    other,
    psk,
    webcrypto: init.webcrypto,
  });
  void (async () => {
    for await (const req of host.incoming()) {
      req.verify().then(
        (c) => report({ type: 'accepted', at: now(), setup: c.setup }),
        (err: unknown) => report({ type: 'error', message: String(err) }),
      );
    }
  })();

  // The raw baseline's responder: one PeerLink per tag, made when its first signal arrives.
  const raw = new Map<string, PeerLink>();
  signaling.on('signal', (m) => {
    const d = m.data as { tag?: string; signal?: unknown };
    if (typeof d?.tag !== 'string' || !d.tag.startsWith('bench-raw-')) return;
    let link = raw.get(d.tag);
    if (!link) {
      const tag = d.tag;
      link = new PeerLink({ rtc, initiator: false, candidateFilter: loopbackOnly });
      link.on('signal', (s) => void signaling.sendSignal(m.from, { tag, signal: s }).catch(() => {}));
      link.once('open', () => report({ type: 'raw-open', tag, at: now() }));
      raw.set(tag, link);
    }
    link.signal(d.signal);
  });
  process.on('message', (msg: { type?: string; tag?: string }) => {
    if (msg.type !== 'close-raw' || typeof msg.tag !== 'string') return;
    raw.get(msg.tag)?.close();
    raw.delete(msg.tag);
  });
  process.once('disconnect', () => {
    void host.close().finally(() => process.exit(0));
  });
  report({ type: 'ready' });
}

process.once('message', (init: SetupPeerInit) => {
  start(init).catch((err: unknown) => {
    report({ type: 'error', message: String(err) });
    process.exit(1);
  });
});
