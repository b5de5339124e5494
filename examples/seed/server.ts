/**
 * The seed's async server: accepts connections from paired peers only and sends "hello world" to each
 * (TCP mode: reliable, ordered messages). Runs until Ctrl-C; start it before the client.
 *
 *   npm run signaling                                # terminal 1
 *   node --import tsx examples/seed/server.ts [DIR]  # terminal 2
 *   node --import tsx examples/seed/client.ts [DIR]  # terminal 3
 */
import { isP2PTLSError } from '../../src/node.js';
import { testConfig } from './config.js';

const { host } = await testConfig('server');
console.log('waiting for connections');
for await (const request of host.incoming()) {
  try {
    // Runs the handshake with the pinned key and PSK from the store; anyone else is refused.
    const stream = await request.verify();
    console.log('sending message hello world');
    await stream.send('hello world');
    void stream.closed.then((c) => console.log(`connection closed: ${c.reason}`));
  } catch (err) {
    // A refused or failed dial ends that request, not the server.
    console.log(`refused ${request.peerId}: ${isP2PTLSError(err) ? err.code : err}`);
  }
}
