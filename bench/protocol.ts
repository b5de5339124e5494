/**
 * npm run bench:protocol — in-process seal+open throughput of p2ptls records beside raw AES-GCM on the
 * same buffers in the same run, for both AEAD providers, plus handshake time (key generation excluded).
 *
 * "ours" = Session.send → records → Session.receive (or sendDatagram/receiveDatagram), pipelined with up
 * to `window` operations in flight: 32 for WebCrypto, whose calls run on a thread pool and overlap, and 1
 * for node:crypto, which is synchronous (operations in flight would only add bookkeeping to both sides).
 * "raw"  = provider.seal then provider.open of the same message with a fixed key, same pipelining; for
 *          messages larger than a record, also the same bytes as a raw stream of record-sized seals/opens.
 * Rows marked "output copies" join the two sessions as a data channel does, whose send copies each record
 * and which delivers it at once: the sender then puts records together in a buffer of its own, as on a
 * connection. The others keep every record the sender hands over (a harness, not a transport).
 *
 * Flags: --quick (smaller volumes), --runs N (alternating raw/ours pairs per row, default 5: the median of
 * each side and the median [min–max] of the per-pair ratio are printed). The last column divides bytes
 * per CPU-second of the process (thread pool included) instead of per wall-clock second: on a machine
 * other work loads, it still tells what the record layer costs beside raw AES-GCM. After the table, the
 * record layer's own cost per message in µs: the same TCP rows with an AEAD that does no AES-GCM,
 * beside the time of one WebCrypto seal+open of the same message.
 */
import { Identity } from '../src/identity/index.js';
import { type AeadProvider, Defaults, webCryptoAead } from '../src/protocol/index.js';
import { nodeCryptoAead } from '../src/runtime/node-aead.js';
import { connectInMemory } from '../src/testing/in-memory.js';
import { flag } from './flags.js';
import { RecordRows, type Timing } from './record-rows.js';

/** Operations in flight, per provider (see above). */
const windowOf = (aead: AeadProvider) => (aead.name === 'webcrypto' ? 32 : 1);
const MiB = 1024 * 1024;
const quick = process.argv.includes('--quick');
const RUNS = Number(flag('runs') ?? 5);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

function mbps(bytes: number, ms: number) {
  return bytes / MiB / (ms / 1000);
}

async function handshakeMs(a: Identity, b: Identity, n: number): Promise<number[]> {
  const psk = crypto.getRandomValues(new Uint8Array(32));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await connectInMemory({ initiator: a, responder: b, psk });
    out.push(performance.now() - t0);
  }
  return out.sort((x, y) => x - y);
}

const sizes: [string, number, number][] = [
  ['64 B', 64, quick ? 20_000 : 40_000],
  ['1 KiB', 1024, quick ? 10_000 : 20_000],
  ['16 KiB', 16 * 1024, quick ? 2_000 : 4_000],
  ['1 MiB', MiB, quick ? 32 : 64],
];

const [a, b] = await Promise.all([Identity.generate(), Identity.generate()]);
const runner = new RecordRows(a, b, () => {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
});
// A first run so JIT warm-up is not charged to the first row.
await runner.tcp(webCryptoAead, new Uint8Array(1024), 2000, 1);

const rows: string[][] = [];
let headline = { ours: 0, base: 0, ratio: 0 };
for (const aead of [webCryptoAead, nodeCryptoAead]) {
  for (const [label, size, count] of sizes) {
    // At most 8 MiB of messages in flight: the session's receive window is 16 MiB.
    runner.window = Math.max(1, Math.min(windowOf(aead), Math.floor((8 * MiB) / size)));
    const msg = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
    const body = size > 65536 ? new Uint8Array(size) : msg;
    const rawRun = (chunk?: number) => async () => ({
      ...(await runner.raw(aead, body, count, chunk)),
      bytes: size * count,
    });
    const variants: [
      string,
      string,
      () => Promise<Timing & { bytes: number }>,
      string,
      () => Promise<Timing & { bytes: number }>,
    ][] = [['TCP', 'one message per send', () => runner.tcp(aead, body, count, 1), 'one call', rawRun()]];
    if (size > 65536) {
      const r16 = Defaults.recordSize;
      const r64 = 65536 - 256;
      variants.push([
        'TCP',
        '16 KiB records',
        () => runner.tcp(aead, body, count, 1),
        '16 KiB stream',
        rawRun(r16),
      ]);
      variants.push([
        'TCP',
        '64 KiB records',
        () => runner.tcp(aead, body, count, 1, r64),
        '64 KiB stream',
        rawRun(r64),
      ]);
      // As on a connection, whose data channel copies each record: the sender seals every record into
      // one buffer of its own, instead of a new record-sized one per record as the rows above do.
      for (const [size, name] of [
        [r16, '16 KiB'],
        [r64, '64 KiB'],
      ] as const)
        variants.push([
          'TCP',
          `${name} records, output copies`,
          () => runner.tcpChannel(aead, body, count, true, size),
          `${name} stream`,
          rawRun(size),
        ]);
    }
    if (size <= 1024)
      variants.push([
        'TCP',
        '64 messages per send',
        () => runner.tcp(aead, body, count, 64),
        'one call',
        rawRun(),
      ]);
    // Through outputs that copy and deliver at once, as a data channel's (RecordRows.channel): the
    // session puts records together in a buffer of its own, as it does on a connection.
    if (size <= 16 * 1024)
      variants.push(
        [
          'TCP',
          'one per send, output copies',
          () => runner.tcpChannel(aead, body, count),
          'one call',
          rawRun(),
        ],
        [
          'SLLP',
          'one each, output copies',
          () => runner.sllpChannel(aead, body, count),
          'one call',
          rawRun(),
        ],
      );
    if (size <= 16 * 1024)
      variants.push([
        'SLLP',
        'one datagram each',
        () => runner.sllp(aead, body, count),
        'one call',
        rawRun(),
      ]);
    for (const [mode, pattern, run, baseline, rawOf] of variants) {
      const bases: number[] = [];
      const ourss: number[] = [];
      const ratios: number[] = [];
      const cpuRatios: number[] = [];
      // Alternating pairs, so that both sides see the same load (the machine is shared).
      for (let i = 0; i < RUNS; i++) {
        const b = await rawOf();
        const o = await run();
        bases.push(mbps(b.bytes, b.ms));
        ourss.push(mbps(o.bytes, o.ms));
        ratios.push(mbps(o.bytes, o.ms) / mbps(b.bytes, b.ms));
        // Bytes per CPU-second, ours ÷ raw: what the record layer costs, whatever else runs on the machine.
        cpuRatios.push(o.bytes / o.cpuMs / (b.bytes / b.cpuMs));
      }
      const [ours, base, ratio] = [median(ourss), median(bases), median(ratios)];
      rows.push([
        aead.name,
        mode,
        label,
        pattern,
        ours.toFixed(1),
        baseline,
        base.toFixed(1),
        `${ratio.toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`,
        `${median(cpuRatios).toFixed(2)} [${Math.min(...cpuRatios).toFixed(2)}–${Math.max(...cpuRatios).toFixed(2)}]`,
      ]);
      if (aead === webCryptoAead && size === 16 * 1024 && pattern === 'one message per send')
        headline = { ours, base, ratio };
    }
  }
}

const head = [
  'aead',
  'mode',
  'size',
  'pattern',
  'ours MB/s',
  'raw AES-GCM as',
  'raw MB/s',
  'ratio [min–max]',
  'per CPU-s ratio',
];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(line(head));
for (const r of rows) console.log(line(r));

/**
 * An AEAD that does everything but AES-GCM: it allocates and copies as a real provider does (a new
 * buffer of plaintext + tag per seal, of plaintext per open) and answers through a promise. With it the
 * same rows measure what the record layer itself costs per message (headers, ordering, flow control,
 * promises, copies), which must not dominate the cipher's own cost (issue #14.4).
 */
const noCipher: AeadProvider = {
  name: 'no cipher',
  importKey: () => Promise.resolve({ provider: 'no cipher' }),
  seal: (_key, _nonce, _aad, plaintext) => {
    const out = new Uint8Array(plaintext.length + 16);
    out.set(plaintext);
    return Promise.resolve(out);
  },
  open: (_key, _nonce, _aad, ciphertext) => Promise.resolve(ciphertext.slice(0, ciphertext.length - 16)),
};

/** µs per message of `ours` beyond `raw` with {@link noCipher}, beside one raw WebCrypto seal+open. */
async function overheadRow(label: string, size: number, count: number): Promise<string> {
  const msg = crypto.getRandomValues(new Uint8Array(size));
  runner.window = 32;
  const extra: number[] = [];
  const cipher: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const base = await runner.raw(noCipher, msg, count);
    const ours = await runner.tcp(noCipher, msg, count, 1);
    const gcm = await runner.raw(webCryptoAead, msg, Math.ceil(count / 4));
    extra.push(((ours.ms - base.ms) * 1000) / count);
    cipher.push((gcm.ms * 1000) / Math.ceil(count / 4));
  }
  const [e, c] = [median(extra), median(cipher)];
  return `  ${label}: ${e.toFixed(1)} µs [${Math.min(...extra).toFixed(1)}–${Math.max(...extra).toFixed(1)}] of record layer per message, against ${c.toFixed(1)} µs for one WebCrypto seal+open (${((100 * e) / c).toFixed(0)} %)`;
}

console.log(
  '\nper-message cost of the record layer itself (a no-cipher AEAD, ours − raw; TCP mode, one message per send):',
);
console.log(await overheadRow('1 KiB', 1024, quick ? 10_000 : 20_000));
console.log(await overheadRow('16 KiB', 16 * 1024, quick ? 4_000 : 8_000));

const hs = await handshakeMs(a, b, quick ? 10 : 40);
const hsP50 = hs[Math.floor(hs.length / 2)]!;
const hsP99 = hs[Math.min(hs.length - 1, Math.floor(hs.length * 0.99))]!;
console.log(
  `\nhandshake (RSA-2048, X25519, in-process, key generation excluded): p50 ${hsP50.toFixed(1)} ms, p99 ${hsP99.toFixed(1)} ms`,
);
console.log(
  `(medians of ${RUNS} alternating raw/ours pairs; a 1 MiB message is compared with one raw call and with the same bytes as a raw stream in its record size; datagrams are capped at 64 KiB, so SLLP has no 1 MiB row)`,
);
console.log(
  `headline: tcp-16KiB-webcrypto-MB/s ours=${headline.ours.toFixed(1)} baseline=${headline.base.toFixed(1)} ratio=${headline.ratio.toFixed(2)}`,
);
