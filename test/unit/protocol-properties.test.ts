/**
 * Property-based tests (fast-check) of the record layers and the handshake parsers: arbitrary sizes,
 * batches, record sizes, key-update rates, network schedules and forgeries.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Identity } from '../../src/identity/identity.js';
import { webCryptoAead } from '../../src/protocol/aead.js';
import {
  type DatagramResult,
  InitiatorHandshake,
  parseClientHello,
  ReplayWindow,
  ResponderHandshake,
} from '../../src/protocol/index.js';
import { nodeCryptoAead } from '../../src/runtime/node-aead.js';
import { pumpDatagrams } from '../../src/testing/in-memory.js';
import {
  cachingSigner,
  fixedInputs,
  type HandshakeRun,
  identities,
  outcome,
  type PlainEvent,
  pairFrom,
  prng,
  pumpReliable,
  randomPsk,
  runHandshake,
  Suite,
} from '../helpers/protocol.js';

/** Pseudo-random bytes from a seed: large inputs without generating them element by element. */
function bytesFrom(seed: number, length: number): Uint8Array {
  const rand = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (rand() * 256) | 0;
  return out;
}

const messagesOf = (events: readonly PlainEvent[]) =>
  events
    .filter((e): e is Extract<PlainEvent, { type: 'message' }> => e.type === 'message')
    .map((e) => e.data);

const recordSizeArb = fc.oneof(
  fc.integer({ min: 64, max: 65536 }),
  fc.constantFrom(64, 65, 127, 128, 1024, 16 * 1024, 65536),
);

/** Sizes around multiples of the record size, plus anything up to 300 KiB. */
const sizeFor = (recordSize: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: 300 * 1024 }),
    fc
      .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -5, max: 5 }))
      .map(([k, d]) => Math.max(0, k * recordSize + d)),
    fc.integer({ min: 0, max: 300 }),
  );

describe('protocol properties', () => {
  let alice: Identity;
  let bob: Identity;
  let run: HandshakeRun;

  before(async () => {
    [alice, bob] = (await identities()) as [Identity, Identity];
    const psk = randomPsk();
    run = await runHandshake(
      { identity: alice, peer: bob.publicIdentity, psk },
      { identity: bob, peer: alice.publicIdentity, psk },
    );
  });

  it('any message of 0..300 KiB round-trips byte-exactly with any recordSize in [64, 65536], both ways', async () => {
    await fc.assert(
      fc.asyncProperty(
        recordSizeArb.chain((recordSize) =>
          fc.record({ recordSize: fc.constant(recordSize), size: sizeFor(recordSize), seed: fc.integer() }),
        ),
        fc.boolean(),
        async ({ recordSize, size, seed }, reverse) => {
          const pair = pairFrom(run, { recordSize });
          const [from, to] = reverse ? [pair.responder, pair.initiator] : [pair.initiator, pair.responder];
          const m = bytesFrom(seed, size);
          await from.session.send(m);
          const expectedRecords =
            size <= recordSize ? 1 : 1 + Math.ceil((size - (recordSize - 4)) / recordSize);
          assert.equal(from.sentReliable.length, expectedRecords);
          for (const r of from.sentReliable) assert.ok(r.length <= recordSize + 18);
          const events = await pumpReliable(from, to);
          assert.equal(events.length, 1);
          assert.deepEqual(events[0], { type: 'message', data: m });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('multi-MiB messages round-trip byte-exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2 * 1024 * 1024, max: 6 * 1024 * 1024 }),
        fc.integer({ min: 4096, max: 65536 }),
        fc.integer(),
        async (size, recordSize, seed) => {
          const { initiator: a, responder: b } = pairFrom(run, { recordSize });
          const m = bytesFrom(seed, size);
          await a.session.send(m);
          const got = messagesOf(await pumpReliable(a, b));
          assert.equal(got.length, 1);
          assert.equal(got[0]!.length, size);
          assert.ok(Buffer.from(got[0]!).equals(Buffer.from(m)));
        },
      ),
      { numRuns: 3 },
    );
  });

  it('any interleaving of sends (batches), pings and key updates delivers every message in order', async () => {
    const command = fc.oneof(
      {
        weight: 6,
        arbitrary: fc
          .array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 25 })
          .map((msgs) => ({ kind: 'send' as const, msgs })),
      },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ minLength: 8, maxLength: 8 })
          .map((data) => ({ kind: 'ping' as const, data })),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'update' as const }) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 64, max: 4096 }),
        fc.integer({ min: 1, max: 64 }),
        fc.boolean(),
        async (commands, recordSize, maxRecordsPerKey, awaitEach) => {
          const { initiator: a, responder: b } = pairFrom(run, {
            initiator: { recordSize, maxRecordsPerKey },
            responder: { recordSize },
          });
          const sent: Uint8Array[] = [];
          const pings: Uint8Array[] = [];
          const pending: Promise<void>[] = [];
          for (const c of commands) {
            const p =
              c.kind === 'send'
                ? a.session.send(...c.msgs)
                : c.kind === 'ping'
                  ? a.session.ping(c.data)
                  : a.session.updateKeys();
            if (c.kind === 'send') sent.push(...c.msgs);
            if (c.kind === 'ping') pings.push(c.data);
            if (awaitEach) await p;
            else pending.push(p);
          }
          await Promise.all(pending);
          const events = await pumpReliable(a, b);
          assert.deepEqual(messagesOf(events), sent);
          // Pongs come back in order; b's own key updates (answers to requests) are followed by a.
          const back = await pumpReliable(b, a);
          assert.deepEqual(
            back.filter((e) => e.type === 'pong').map((e) => (e.type === 'pong' ? e.data : null)),
            pings,
          );
          assert.equal(b.session.keyGeneration, commands.filter((c) => c.kind === 'update').length);
          assert.equal(a.session.state, 'open');
          assert.equal(b.session.state, 'open');
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a damaged record stream delivers only a correct prefix of the messages, then fails with a typed code', async () => {
    const damage = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('drop' as const) }),
      fc.record({ kind: fc.constant('duplicate' as const) }),
      fc.record({ kind: fc.constant('swap' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 700 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 64, max: 512 }),
        fc.nat(),
        damage,
        async (msgs, recordSize, where, d) => {
          const { initiator: a, responder: b } = pairFrom(run, { recordSize, maxRecordsPerKey: 5 });
          for (const m of msgs) await a.session.send(m);
          const records = a.sentReliable.splice(0);
          const k = where % records.length;
          const damaged = records.slice();
          const r = records[k]!;
          if (d.kind === 'flip') {
            const x = r.slice();
            x[d.at % x.length]! ^= 1 << d.bit;
            damaged[k] = x;
          } else if (d.kind === 'truncate') damaged[k] = r.subarray(0, d.at % r.length);
          else if (d.kind === 'drop') damaged.splice(k, 1);
          else if (d.kind === 'duplicate') damaged.splice(k, 0, r);
          else if (k + 1 < records.length) [damaged[k], damaged[k + 1]] = [damaged[k + 1]!, damaged[k]!];
          else damaged.splice(k, 1); // swapping the last record with nothing: it is lost
          const delivered: Uint8Array[] = [];
          let code = 'ok';
          for (const rec of damaged) {
            code = await outcome(async () => {
              delivered.push(...messagesOf(await b.session.receive(rec)));
            });
            if (code !== 'ok') break;
          }
          // Never a wrong message: what arrived is a prefix of what was sent.
          assert.deepEqual(delivered, msgs.slice(0, delivered.length));
          if (d.kind === 'drop' && k === records.length - 1) {
            assert.equal(code, 'ok', 'losing the last record is invisible to the record layer');
            return;
          }
          if (d.kind === 'swap' && k === records.length - 1) return;
          assert.ok(
            ['bad_record_mac', 'malformed', 'unexpected_message'].includes(code),
            `damage ${JSON.stringify(d)} at record ${k}/${records.length}: ${code}`,
          );
          assert.equal(b.session.state, 'failed');
        },
      ),
      { numRuns: 100 },
    );
  });

  it('datagrams under any loss/reorder/duplication schedule with forgeries: at most once, only authentic', async () => {
    const fate = fc.constantFrom(
      'deliver' as const,
      'deliver' as const,
      'drop' as const,
      'duplicate' as const,
    );
    const forgery = fc.oneof(
      fc.uint8Array({ maxLength: 120 }).map((bytes) => ({ kind: 'random' as const, bytes })),
      fc
        .record({ of: fc.nat(), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) })
        .map((f) => ({ kind: 'flip' as const, ...f })),
      fc
        .record({ of: fc.nat(), seq: fc.nat({ max: 2 ** 20 }) })
        .map((f) => ({ kind: 'reseq' as const, ...f })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.uint8Array({ maxLength: 200 }), fate), { minLength: 1, maxLength: 150 }),
        fc.array(forgery, { maxLength: 30 }),
        fc.integer(),
        fc.boolean(),
        async (datagrams, forgeries, shuffleSeed, dropStale) => {
          const { initiator: a, responder: b } = pairFrom(run, { dropStaleDatagrams: dropStale });
          const genuine = new Map<number, { data: Uint8Array; sentAt: number }>();
          const fates: ('deliver' | 'drop' | 'duplicate')[] = [];
          for (const [i, [data, f]] of datagrams.entries()) {
            const sentAt = 1_600_000_000_000 + i;
            const seq = await a.session.sendDatagram(data, sentAt);
            assert.equal(seq, i);
            genuine.set(seq, { data, sentAt });
            fates.push(f);
          }
          const real = a.sentDatagrams.slice();
          for (const f of forgeries) {
            let x: Uint8Array;
            if (f.kind === 'random') x = f.bytes;
            else {
              x = real[f.of % real.length]!.slice();
              if (f.kind === 'flip') x[f.at % x.length]! ^= 1 << f.bit;
              else new DataView(x.buffer).setUint32(6, f.seq + real.length); // a seq never sent
            }
            a.sentDatagrams.push(x);
            fates.push('deliver');
          }
          const rand = prng(shuffleSeed);
          const inFlight = fates.reduce((n, f) => n + (f === 'drop' ? 0 : f === 'duplicate' ? 2 : 1), 0);
          const results: DatagramResult[] = await pumpDatagrams(
            a,
            b,
            (_d, i) => fates[i]!,
            (items) => {
              for (let i = items.length - 1; i > 0; i--) {
                const j = Math.floor(rand() * (i + 1));
                [items[i], items[j]] = [items[j]!, items[i]!];
              }
              return items;
            },
          );
          assert.equal(results.length, inFlight);
          const seen = new Set<number>();
          for (const r of results) {
            if (!r.ok) continue;
            assert.equal(r.kind, 'data');
            if (r.kind !== 'data') continue;
            assert.equal(r.epoch, 0);
            assert.ok(!seen.has(r.seq), `seq ${r.seq} delivered twice`);
            seen.add(r.seq);
            const g = genuine.get(r.seq);
            assert.ok(g, `seq ${r.seq} was never sent`);
            assert.deepEqual(r.data, g.data);
            assert.equal(r.sentAt, g.sentAt);
          }
          const stats = b.session.datagramStats;
          const drops = stats.dropped.invalid + stats.dropped.replay + stats.dropped.stale;
          assert.equal(stats.received, seen.size);
          assert.equal(stats.received + drops, inFlight);
          // Every genuine datagram that survived the network arrives, unless stale ones are dropped.
          const survivors = fates.slice(0, datagrams.length).filter((f) => f !== 'drop').length;
          if (!dropStale) assert.equal(seen.size, survivors);
          else assert.ok(seen.size <= survivors && (survivors === 0 || seen.size > 0));
          // Without stale-dropping, the drops are exactly the duplicate copies and the forgeries.
          const dups = fates.filter((f) => f === 'duplicate').length;
          if (!dropStale) assert.equal(drops, dups + forgeries.length);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('datagrams across key updates and automatic epochs, under any schedule: at most once per (epoch, seq), only authentic', async () => {
    const step = fc.oneof(
      {
        weight: 8,
        arbitrary: fc.uint8Array({ maxLength: 64 }).map((data) => ({ kind: 'send' as const, data })),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'update' as const }) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 2, max: 40 }),
        fc.array(fc.constantFrom('deliver' as const, 'drop' as const, 'duplicate' as const), {
          maxLength: 200,
        }),
        fc.integer(),
        fc.boolean(),
        async (steps, maxRecordsPerKey, fateList, seed, concurrent) => {
          const { initiator: a, responder: b } = pairFrom(run, { maxRecordsPerKey });
          const genuine = new Map<string, { data: Uint8Array; sentAt: number }>();
          let t = 0;
          let epoch = 0;
          let lastSeq = -1;
          for (const st of steps) {
            if (st.kind === 'update') {
              await a.session.updateKeys();
              epoch++;
              lastSeq = -1;
              continue;
            }
            const seq = await a.session.sendDatagram(st.data, ++t);
            if (seq <= lastSeq) epoch++; // an automatic epoch change restarted the numbering
            lastSeq = seq;
            genuine.set(`${epoch}:${seq}`, { data: st.data, sentAt: t });
          }
          const rand = prng(seed);
          const fateOf = (i: number) => fateList[i % Math.max(1, fateList.length)] ?? 'deliver';
          const shuffleItems = (items: Uint8Array[]) => {
            for (let i = items.length - 1; i > 0; i--) {
              const j = Math.floor(rand() * (i + 1));
              [items[i], items[j]] = [items[j]!, items[i]!];
            }
            return items;
          };
          let results: DatagramResult[];
          if (concurrent) results = await pumpDatagrams(a, b, (_d, i) => fateOf(i), shuffleItems);
          else {
            const inFlight: Uint8Array[] = [];
            a.sentDatagrams.splice(0).forEach((d, i) => {
              const f = fateOf(i);
              if (f !== 'drop') inFlight.push(d);
              if (f === 'duplicate') inFlight.push(d);
            });
            results = [];
            for (const d of shuffleItems(inFlight)) results.push(await b.session.receiveDatagram(d));
          }
          const seen = new Set<string>();
          for (const r of results) {
            if (!r.ok || r.kind !== 'data') {
              assert.ok(!r.ok, 'only data datagrams were sent');
              continue;
            }
            const key = `${r.epoch}:${r.seq}`;
            assert.ok(!seen.has(key), `${key} delivered twice`);
            seen.add(key);
            const g = genuine.get(key);
            assert.ok(g, `${key} was never sent`);
            assert.deepEqual(r.data, g.data);
            assert.equal(r.sentAt, g.sentAt);
          }
          const stats = b.session.datagramStats;
          assert.equal(stats.received, seen.size);
          assert.equal(
            stats.received + stats.dropped.invalid + stats.dropped.replay + stats.dropped.stale,
            results.length,
          );
          assert.equal(b.session.state, 'open');
        },
      ),
      { numRuns: 80 },
    );
  });

  it('node:crypto and WebCrypto AEAD providers are interchangeable byte for byte (records and datagrams)', async () => {
    const providers = { web: webCryptoAead, node: nodeCryptoAead } as const;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 1500 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 64, max: 1024 }),
        fc.constantFrom('web' as const, 'node' as const),
        fc.constantFrom('web' as const, 'node' as const),
        fc.nat({ max: 5 }),
        async (msgs, recordSize, tx, rx, flipAt) => {
          const web = pairFrom(run, { recordSize, maxRecordsPerKey: 3 });
          const mixed = pairFrom(run, {
            initiator: { recordSize, maxRecordsPerKey: 3, aead: providers[tx] },
            responder: { recordSize, maxRecordsPerKey: 3, aead: providers[rx] },
          });
          for (const m of msgs) {
            await web.initiator.session.send(m);
            await mixed.initiator.session.send(m);
            await web.initiator.session.sendDatagram(m.subarray(0, 200), 7);
            await mixed.initiator.session.sendDatagram(m.subarray(0, 200), 7);
          }
          assert.deepEqual(mixed.initiator.sentReliable, web.initiator.sentReliable);
          assert.deepEqual(mixed.initiator.sentDatagrams, web.initiator.sentDatagrams);
          const dgs = mixed.initiator.sentDatagrams.slice();
          assert.deepEqual(messagesOf(await pumpReliable(mixed.initiator, mixed.responder)), msgs);
          // One at a time: concurrent delivery across two epoch changes is a separate (datagram) test.
          const got: DatagramResult[] = [];
          for (const d of mixed.initiator.sentDatagrams.splice(0))
            got.push(await mixed.responder.session.receiveDatagram(d));
          assert.deepEqual(
            got.map((r) => r.ok && r.kind === 'data' && r.data),
            msgs.map((m) => m.subarray(0, 200)),
          );
          // A tampered datagram is invalid under either provider.
          const bad = dgs[flipAt % dgs.length]!.slice();
          bad[bad.length - 1]! ^= 1;
          const fresh = pairFrom(run, { responder: { aead: providers[rx] } });
          assert.deepEqual(await fresh.responder.session.receiveDatagram(bad), {
            ok: false,
            reason: 'invalid',
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('ReplayWindow agrees with a set-based model on any sequence of checks and accepts', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 64, 96, 1024),
        fc.array(
          fc.tuple(
            fc.oneof(fc.nat({ max: 200 }), fc.nat({ max: 5000 }), fc.nat({ max: 2 ** 40 })),
            fc.boolean(),
          ),
          {
            maxLength: 400,
          },
        ),
        (size, ops) => {
          const w = new ReplayWindow(size);
          const seen = new Set<number>();
          let top = -1;
          for (const [seq, authentic] of ops) {
            const want = seq > top ? 'ok' : top - seq >= size ? 'stale' : seen.has(seq) ? 'replay' : 'ok';
            assert.equal(w.check(seq), want, `seq ${seq}, top ${top}`);
            if (want === 'ok' && authentic) {
              w.accept(seq);
              seen.add(seq);
              top = Math.max(top, seq);
            }
            assert.equal(w.highest, top);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random multi-byte damage to any handshake message never succeeds and only raises typed errors', async () => {
    const psk = randomPsk();
    const suite = Suite.X25519_AES256GCM_SHA256;
    const iOpts = {
      identity: alice,
      peer: bob.publicIdentity,
      psk,
      suite,
      deterministic: await fixedInputs(suite),
    };
    const rOpts = {
      identity: cachingSigner(bob),
      peer: alice.publicIdentity,
      psk,
      deterministic: await fixedInputs(suite),
    };
    const base = await runHandshake(iOpts, rOpts);
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
      minLength: 1,
      maxLength: 6,
    });
    const apply = (bytes: Uint8Array, m: [number, number][]) => {
      const x = bytes.slice();
      for (const [at, v] of m) x[at % x.length]! ^= v;
      return x;
    };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), mutation, async (which, m) => {
        let got: string;
        if (which === 0) {
          const bad = apply(base.clientHello, m);
          got = await outcome(async () => {
            const r = await ResponderHandshake.accept(parseClientHello(bad), rOpts);
            await r.receive(base.initiatorAuth);
          });
        } else if (which === 1 || which === 2) {
          const i = await InitiatorHandshake.start(iOpts);
          const sh = which === 1 ? apply(base.serverHello, m) : base.serverHello;
          const ra = which === 2 ? apply(base.responderAuth, m) : base.responderAuth;
          got = await outcome(async () => {
            await i.receive(sh);
            await i.receive(ra);
          });
        } else {
          const r = await ResponderHandshake.accept(parseClientHello(base.clientHello), rOpts);
          got = await outcome(() => r.receive(apply(base.initiatorAuth, m)));
        }
        // XOR with non-zero values at possibly repeated positions can cancel out; only then may it pass.
        const unchanged = [base.clientHello, base.serverHello, base.responderAuth, base.initiatorAuth].map(
          (b, k) => k !== which || Buffer.from(apply(b, m)).equals(Buffer.from(b)),
        );
        if (unchanged.every(Boolean)) assert.equal(got, 'ok');
        else assert.notEqual(got, 'ok');
      }),
      { numRuns: 300 },
    );
  });
});
