/**
 * npm start — the signaling server and the web demo on http://localhost:8080, with embedded defaults
 * (in-memory directory, no Redis). Builds web-demo/dist/app.js first. PORT and HOST change where it
 * listens (PORT=0 picks a free port; the URL printed is the real one); PUBLIC_ORIGINS the https origin(s)
 * of a reverse proxy in front of it; ICE_SERVERS (JSON) gives the page
 * STUN/TURN servers for peers on other networks. Stops cleanly on SIGINT (Ctrl-C) and SIGTERM: `npm start`
 * execs this process in place of its shell, so a signal sent to npm alone reaches it (through a shell it
 * did not, and the server kept its port).
 *
 * The headless two-Node-peer walkthrough is `npm run demo:node`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSignalingServer } from '../signaling-server/server.js';
import { iceServersFromEnv } from '../web-demo/src/config.js';

// scripts/build-web-demo.mjs is plain JS; import it by a computed path and type what we use.
const { buildWebDemo, WEB_DEMO_DIR } = (await import(
  new URL('./build-web-demo.mjs', import.meta.url).href
)) as {
  buildWebDemo(): Promise<number>;
  WEB_DEMO_DIR: string;
};

let iceServers: ReturnType<typeof iceServersFromEnv>;
try {
  iceServers = iceServersFromEnv(process.env.ICE_SERVERS);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const bytes = await buildWebDemo();
writeFileSync(join(WEB_DEMO_DIR, 'dist', 'config.json'), JSON.stringify({ iceServers }));
const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const server = await startSignalingServer({
  port,
  host,
  staticDir: WEB_DEMO_DIR,
  // Behind an https reverse proxy: the origin(s) the pages are served from (comma-separated).
  publicOrigins: process.env.PUBLIC_ORIGINS?.split(',').filter(Boolean) ?? [],
  logLevel: process.env.LOG_LEVEL ?? 'warn',
});
const url = new URL(server.url);
// http://localhost is a secure context (WebCrypto, getUserMedia) on every browser; 127.0.0.1 is too,
// but people type and share "localhost".
if (host === '127.0.0.1' || host === '::1') url.hostname = 'localhost';
console.log(`p2ptls web demo (${(bytes / 1024).toFixed(0)} KiB bundle) and signaling server`);
console.log(`listening ${url.origin}`);
console.log('Open it in two browsers (or two tabs, one with ?profile=bob), create an invite in one,');
console.log('open the invite link in the other. Ctrl-C stops the server.');

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping`);
  await server.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop('SIGINT'));
process.once('SIGTERM', () => void stop('SIGTERM'));
