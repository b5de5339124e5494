/**
 * SLLP mode, client side: sends N numbered datagrams and counts how many the server echoed. Loss is
 * part of the contract, so it waits a moment for echoes rather than for all of them.
 *
 *   node --import tsx examples/seed/sllp-client.ts [DIR] [N]   # after sllp-server.ts; N default 20
 */
import { testConfig } from './config.js';

const count = Number(process.argv[3] ?? 20);
const { host, peer, close } = await testConfig('client');
const stream = await host.connect(peer);

const back = new Set<string>();
const allBack = new Promise<void>((resolve) => {
  stream.datagrams.on('datagram', (d) => {
    back.add(new TextDecoder().decode(d.data));
    if (back.size === count) resolve();
  });
});
for (let i = 0; i < count; i++) await stream.datagrams.send(`datagram ${i}`);
await Promise.race([allBack, new Promise((r) => setTimeout(r, 2_000))]);
console.log(`sent ${count} datagrams, ${back.size} came back`);
await stream.close(0, 'done');
await close();
