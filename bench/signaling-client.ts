/**
 * SignalingClient inbound benchmark (issue 17, point 3): `npm run bench:signaling-client -- [--runs 5]`.
 *
 * An in-process socket.io server that authenticates anyone and answers lookups pushes a burst of N
 * signals from one stranger at a client as fast as it can emit them; every envelope carries a fresh
 * nonce and a signature that does not verify, so each costs the client one full RSA-PSS check (the
 * attack of issue 17). Measured: time from the first emit until the client has accounted for all N
 * (`stats()`: delivered + dropped + refused), for N = 1,000 and 16,000, with the stranger lane sized to
 * hold the whole burst (so the cost per signal at that queue length is what is timed) and with the
 * default bounds (what a client does by default: most of a 16k burst dropped unread).
 *
 * Baseline, same run: the same N envelopes through `checkSignedSignal` in a tight loop (the floor: the
 * verification alone, no socket, no queue). Headline: signals/s at 16k queued, ours vs that floor.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { Identity } from '../src/identity/index.js';
import { SignalingClient } from '../src/signaling/client.js';
import type { SignalingInboundOptions } from '../src/signaling/inbound.js';
import type { SignedSignal } from '../src/signaling/messages.js';
import { checkSignedSignal, createSignedSignal, randomNonce } from '../src/signaling/wire.js';
import { toBase64Url } from '../src/util/bytes.js';

type Ack = (answer: unknown) => void;

async function fakeServer(stranger: Identity) {
  const http = createServer();
  const io = new Server(http);
  const sockets: import('socket.io').Socket[] = [];
  io.on('connection', (socket) => {
    socket.emit('challenge', { v: 1, nonce: toBase64Url(crypto.getRandomValues(new Uint8Array(32))) });
    socket.on('auth', (req: { identity: { peerId: string } }, ack: Ack) => {
      sockets.push(socket);
      ack({ ok: true, peerId: req.identity.peerId });
    });
    socket.on('lookup', (_req: unknown, ack: Ack) =>
      ack({ ok: true, identity: stranger.exportPublic(), online: true }),
    );
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    flood: (envs: SignedSignal[]) => {
      for (const env of envs) sockets[0]!.emit('signal', { from: stranger.peerId, env });
    },
    close: async () => {
      await io.close();
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[], digits = 0) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

async function clientRun(
  me: Identity,
  stranger: Identity,
  envs: SignedSignal[],
  inbound: SignalingInboundOptions,
): Promise<{ ms: number; verified: number; dropped: number }> {
  const server = await fakeServer(stranger);
  const client = new SignalingClient({ url: server.url, identity: me, inbound });
  try {
    await client.connect();
    // Warm the stranger's key into the client's cache, as during a real flood.
    await client.lookup(stranger.peerId);
    const accounted = () => {
      const s = client.stats();
      return s.delivered + s.dropped + Object.values(s.rejected).reduce((a, b) => a + b, 0);
    };
    const done = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (accounted() < envs.length) return;
        clearInterval(poll);
        resolve();
      }, 2);
    });
    const t0 = performance.now();
    server.flood(envs);
    await done;
    const ms = performance.now() - t0;
    const s = client.stats();
    return { ms, verified: envs.length - s.dropped, dropped: s.dropped };
  } finally {
    await client.close();
    await server.close();
  }
}

async function floorRun(me: Identity, stranger: Identity, envs: SignedSignal[]): Promise<number> {
  const t0 = performance.now();
  for (const env of envs) {
    await checkSignedSignal(env, {
      self: me.peerId,
      sender: stranger.publicIdentity,
      remember: () => 'fresh',
    });
  }
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
  const runs = Number(values.runs);
  const [me, stranger] = await Promise.all([Identity.generate(), Identity.generate()]);
  const template = await createSignedSignal(stranger, me.peerId, { sdp: 'x'.repeat(600) });
  const burst = (n: number) => Array.from({ length: n }, () => ({ ...template, nonce: randomNonce() }));
  let headline = { ours: 0, floor: 0 };
  for (const n of [1000, 16_000]) {
    const envs = burst(n);
    const whole: number[] = [];
    const bounded: number[] = [];
    const boundedDropped: number[] = [];
    const floor: number[] = [];
    for (let r = 0; r < runs; r++) {
      const w = await clientRun(me, stranger, envs, { maxStrangers: n, rejectedEventsPerWindow: 0 });
      whole.push((w.ms * 1000) / w.verified);
      const b = await clientRun(me, stranger, envs, { rejectedEventsPerWindow: 0 });
      bounded.push(b.ms);
      boundedDropped.push(b.dropped);
      floor.push(((await floorRun(me, stranger, envs)) * 1000) / n);
    }
    console.log(
      `N=${n}: client, whole burst queued: ${fmt(whole, 1)} µs/signal (${fmt(
        whole.map((u) => 1e6 / u),
      )} signals/s); verification alone: ${fmt(floor, 1)} µs/signal`,
    );
    console.log(
      `N=${n}: client, default bounds: burst accounted for in ${fmt(bounded)} ms, ${fmt(boundedDropped)} dropped unread`,
    );
    if (n === 16_000) headline = { ours: 1e6 / median(whole), floor: 1e6 / median(floor) };
  }
  console.log(
    `headline: client_signals_per_s_at_16k_queued ours=${headline.ours.toFixed(0)} baseline=${headline.floor.toFixed(
      0,
    )} ratio=${(headline.ours / headline.floor).toFixed(2)}`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
