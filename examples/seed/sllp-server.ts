/**
 * SLLP mode, server side: datagrams are unreliable and unordered but each one is authenticated and
 * carries the sender's sequence number and clock. Prints every datagram and echoes it back.
 *
 *   node --import tsx examples/seed/sllp-server.ts [DIR]   # then sllp-client.ts with the same DIR
 */
import { isP2PTLSError } from '../../src/node.js';
import { testConfig } from './config.js';

const { host } = await testConfig('server');
console.log('waiting for connections');
for await (const request of host.incoming()) {
  try {
    const stream = await request.verify();
    // Not awaited: one client's datagrams must not hold up the next connection.
    void (async () => {
      // The iterator also yields datagrams that arrived before this loop started.
      for await (const d of stream.datagrams) {
        const text = new TextDecoder().decode(d.data);
        console.log(`datagram seq=${d.seq} sentAt=${new Date(d.sentAt).toISOString()}: ${text}`);
        await stream.datagrams.send(d.data); // -1 if dropped locally; SLLP never waits
      }
      console.log('connection closed');
    })();
  } catch (err) {
    console.log(`refused ${request.peerId}: ${isP2PTLSError(err) ? err.code : err}`);
  }
}
