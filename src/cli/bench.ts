/**
 * `p2ptls bench`: a quick measurement between two hosts in this process on loopback — pairing, dial to
 * authenticated connection, TCP-mode throughput and SLLP datagram delivery and latency. Needs no
 * identity or data directory: both identities are throwaway.
 */
import { fail } from '../errors.js';
import { Identity } from '../identity/identity.js';
import { openMemoryPeerStore } from '../store/memory.js';
import type { CommandContext } from './commands.js';
import { pairLocal, startLocalPeer, startLocalSignaling } from './local.js';
import { mbPerSecond } from './progress.js';

/** Results of one bench run (what --json prints). */
export interface BenchResult {
  backend: string;
  pairMs: number;
  connectMs: number;
  tcp: { bytes: number; messageBytes: number; ms: number; mbPerSecond: number };
  sllp: { sent: number; received: number; bytes: number; medianLatencyMs: number | null };
}

function positive(text: string, option: string, max: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw fail('invalid_argument', `${option} ${text}: expected a number in (0, ${max}]`);
  return n;
}

/** Runs the benchmark and prints a summary (or one JSON object). */
export async function benchCommand(
  ctx: CommandContext,
  opts: { size: string; message: string; datagrams: string },
): Promise<void> {
  const totalBytes = Math.round(positive(opts.size, '--size', 4096) * 1024 * 1024);
  const messageBytes = Math.round(positive(opts.message, '--message', 16 * 1024) * 1024);
  const datagramCount = Math.round(positive(opts.datagrams, '--datagrams', 100_000));
  const { out, scope } = ctx;
  const url = ctx.g.signalGiven ? ctx.g.signal : await startLocalSignaling(scope);
  out.info(`bench: two hosts in this process (${ctx.g.backend}), signaling ${url}`);
  const [idA, idB] = await Promise.all([Identity.generate(), Identity.generate()]);
  const unencrypted = { encryption: { mode: 'unencrypted' as const } };
  const a = await startLocalPeer('a', url, idA, await openMemoryPeerStore(unencrypted), ctx.g.backend, scope);
  const b = await startLocalPeer('b', url, idB, await openMemoryPeerStore(unencrypted), ctx.g.backend, scope);
  const { ms: pairMs } = await pairLocal(a, b);

  // accept(), not incoming() + verify(): a first attempt that fails is retried by connect() as a new dial.
  const accepted = b.host.accept();
  accepted.catch(() => {}); // awaited once connect() is back; connect's own error is the one to report
  let t0 = performance.now();
  const ca = await a.host.connect(b.identity.peerId);
  const cb = await accepted;
  const connectMs = performance.now() - t0;

  // TCP mode: the receiver counts bytes; the clock stops when the last byte arrived.
  let received = 0;
  const allReceived = new Promise<void>((resolve) =>
    cb.on('message', (m) => {
      received += m.length;
      if (received >= totalBytes) resolve();
    }),
  );
  const message = crypto.getRandomValues(new Uint8Array(Math.min(messageBytes, 65_536)));
  const payload = messageBytes <= 65_536 ? message : new Uint8Array(messageBytes).fill(7);
  t0 = performance.now();
  const sends: Promise<void>[] = [];
  for (let sent = 0; sent < totalBytes; sent += payload.length) {
    const chunk = sent + payload.length <= totalBytes ? payload : payload.subarray(0, totalBytes - sent);
    sends.push(ca.send(chunk));
    // Bounded: a few MiB in flight, so the benchmark measures the link, not an ever-growing queue.
    if (sends.length >= 64) await sends.shift();
  }
  await Promise.all(sends);
  await allReceived;
  const tcpMs = performance.now() - t0;

  // SLLP mode: 1 KiB datagrams with the send time inside (one process, one clock), paced one every ~1 ms
  // as bench:transport and demo:node measure latency: sent in bursts of 64 they queued behind each other
  // and the median was queueing time (3 ms against bench:transport's 0.28 ms one way: issue 16).
  const latencies: number[] = [];
  cb.datagrams.on('datagram', (d) => {
    latencies.push(performance.now() - new DataView(d.data.buffer, d.data.byteOffset, 8).getFloat64(0));
  });
  const datagram = new Uint8Array(1024);
  for (let i = 0; i < datagramCount; i++) {
    new DataView(datagram.buffer).setFloat64(0, performance.now());
    await ca.datagrams.send(datagram);
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => setTimeout(r, 300));
  latencies.sort((x, y) => x - y);
  const median = latencies.length ? latencies[Math.floor(latencies.length / 2)]! : null;

  await ca.close(0, 'bench finished');
  const result: BenchResult = {
    backend: ctx.g.backend,
    pairMs: Math.round(pairMs),
    connectMs: Math.round(connectMs),
    tcp: {
      bytes: totalBytes,
      messageBytes: payload.length,
      ms: Math.round(tcpMs),
      mbPerSecond: Number(mbPerSecond(totalBytes, tcpMs).toFixed(1)),
    },
    sllp: {
      sent: datagramCount,
      received: latencies.length,
      bytes: datagram.length,
      medianLatencyMs: median === null ? null : Number(median.toFixed(2)),
    },
  };
  out.result(
    result,
    [
      `pairing (invite → both stores):  ${result.pairMs} ms`,
      `dial → authenticated connection: ${result.connectMs} ms`,
      `TCP mode, ${(totalBytes / 1048576).toFixed(0)} MiB in ${(payload.length / 1024).toFixed(0)} KiB messages: ${result.tcp.mbPerSecond} MB/s (${result.tcp.ms} ms)`,
      `SLLP mode, ${datagramCount} × 1 KiB datagrams: ${result.sllp.received} delivered, median one-way latency ${result.sllp.medianLatencyMs ?? '-'} ms`,
    ].join('\n'),
  );
}
