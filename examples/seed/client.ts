/**
 * The seed's async client: connects to the paired server, receives one message, prints it.
 *
 *   node --import tsx examples/seed/client.ts [DIR]   # after server.ts (see there)
 */
import { testConfig } from './config.js';

const { host, peer, close } = await testConfig('client');
const stream = await host.connect(peer);
const { value: buffer } = await stream.messages().next();
if (!buffer) throw new Error('the server closed before sending anything');
console.log(`got ${buffer.length} bytes from server`);
console.log(`got message: ${new TextDecoder().decode(buffer)} from server`);
await stream.close(0, 'done');
await close();
