/**
 * Byte streams over a CLI session (`connect` and `listen`): local input → peer, peer → local output,
 * like netcat. Each direction ends with an `eof`; the connection closes once both have, so
 * `cmd | p2ptls connect PEER > out` finishes by itself and nothing sent is lost.
 */
import type { Readable, Writable } from 'node:stream';
import { fail } from '../errors.js';
import type { CliSession } from './session.js';

/** Bytes each way, when the stream ended. */
export interface StreamResult {
  sent: number;
  received: number;
  ms: number;
  /** True when the peer closed the connection before both sides said eof (e.g. it was stopped). */
  peerHungUp: boolean;
  /** True when this side closed it first (Ctrl-C here closes the host). */
  weHungUp: boolean;
}

/**
 * Runs both directions until both ended. `input` null means nothing to send (eof at once). Rejects with
 * the connection's error if it fails; a peer that closes normally ends the stream cleanly.
 */
export async function pipeSession(
  session: CliSession,
  input: Readable | null,
  output: Writable,
): Promise<StreamResult> {
  const t0 = performance.now();
  let sent = 0;
  let received = 0;
  let peerHungUp = false;
  let weHungUp = false;
  const conn = session.connection;

  const sending = (async () => {
    if (input) {
      for await (const chunk of input) {
        if (!conn.isOpen) return;
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
        await session.data(bytes);
        sent += bytes.length;
      }
    }
    if (conn.isOpen) await session.control({ t: 'eof' });
  })();
  // Handled below; this keeps a failure after the receiving side already failed from going unhandled.
  sending.catch(() => {});

  const receiving = (async () => {
    for (;;) {
      let frame: Awaited<ReturnType<CliSession['next']>>;
      try {
        frame = await session.next();
      } catch (err) {
        const info = await conn.closed;
        if (!conn.isOpen && !info.error) {
          // Who closed first decides who hung up: the connection knows whether the CLOSE was the peer's.
          if (info.byPeer) peerHungUp = true;
          else weHungUp = true;
          return;
        }
        throw err;
      }
      if (frame.kind === 'data') {
        received += frame.data.length;
        if (!output.write(frame.data)) await new Promise((r) => output.once('drain', r));
        continue;
      }
      if (frame.msg.t === 'eof') return;
      if (frame.msg.t === 'refuse') throw fail('transfer_refused', `the peer refused: ${frame.msg.message}`);
      throw fail('malformed', `unexpected ${frame.msg.t} in a stream`);
    }
  })();

  // The peer hanging up ends our sending too: stdin may never end (a terminal).
  await receiving;
  if (peerHungUp || weHungUp) input?.destroy();
  else
    await sending.catch(async (err) => {
      if (conn.isOpen) throw err;
    });
  if (conn.isOpen) await session.close('stream finished');
  return { sent, received, ms: performance.now() - t0, peerHungUp, weHungUp };
}
