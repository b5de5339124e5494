/**
 * `npm run signaling`: runs the signaling server from the command line.
 *
 *   tsx signaling-server/main.ts --port 8080 --host 127.0.0.1 [--redis-url redis://127.0.0.1:6379]
 *
 * Every flag has an environment fallback (PORT, HOST, REDIS_URL, LOG_LEVEL, STATIC_DIR,
 * PUBLIC_ORIGINS comma-separated). Prints `listening <url>` on stdout once it accepts connections (logs
 * go to stderr as JSON), and shuts down cleanly on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startSignalingServer } from './server.js';

const USAGE = `usage: signaling [--port N] [--host ADDR] [--redis-url URL] [--log-level LEVEL] [--static-dir DIR]
                 [--public-origin URL]... [--trust-proxy] [--events-per-second N] [--ip-events-per-second N]
                 [--flood-strikes N] [--ip-connections-per-minute N] [--ip-unauthenticated N]
                 [--auth-timeout-ms N] [--max-pending-packets N] [--recipient-signals-per-second N]
                 [--max-room-members N] [--room-changes-per-second N] [--peer-room-changes-per-second N]
                 [--member-pages-per-second N] [--pairing-per-minute N]
                 (0 disables a limit; defaults and meaning in signaling-server/README.md)`;

function int(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'redis-url': { type: 'string' },
      'log-level': { type: 'string' },
      'static-dir': { type: 'string' },
      'public-origin': { type: 'string', multiple: true },
      'trust-proxy': { type: 'boolean' },
      'events-per-second': { type: 'string' },
      'ip-events-per-second': { type: 'string' },
      'flood-strikes': { type: 'string' },
      'ip-connections-per-minute': { type: 'string' },
      'ip-unauthenticated': { type: 'string' },
      'auth-timeout-ms': { type: 'string' },
      'max-pending-packets': { type: 'string' },
      'recipient-signals-per-second': { type: 'string' },
      'max-room-members': { type: 'string' },
      'room-changes-per-second': { type: 'string' },
      'peer-room-changes-per-second': { type: 'string' },
      'member-pages-per-second': { type: 'string' },
      'pairing-per-minute': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const env = process.env;
  const staticDir = values['static-dir'] ?? env.STATIC_DIR;
  const redisUrl = values['redis-url'] ?? env.REDIS_URL;
  const server = await startSignalingServer({
    port: int('port', values.port ?? env.PORT, 8080),
    host: values.host ?? env.HOST ?? '127.0.0.1',
    ...(redisUrl ? { redisUrl } : {}),
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
    ...(staticDir ? { staticDir } : {}),
    publicOrigins: values['public-origin'] ?? env.PUBLIC_ORIGINS?.split(',').filter(Boolean) ?? [],
    trustProxy: values['trust-proxy'] ?? false,
    limits: {
      eventsPerSecond: int('events-per-second', values['events-per-second'], 100),
      ipEventsPerSecond: int('ip-events-per-second', values['ip-events-per-second'], 5000),
      floodStrikes: int('flood-strikes', values['flood-strikes'], 50),
      ipConnectionsPerMinute: int('ip-connections-per-minute', values['ip-connections-per-minute'], 600),
      ipUnauthenticated: int('ip-unauthenticated', values['ip-unauthenticated'], 64),
      authTimeoutMs: int('auth-timeout-ms', values['auth-timeout-ms'], 5000),
      maxPendingPackets: int('max-pending-packets', values['max-pending-packets'], 1000),
      recipientSignalsPerSecond: int(
        'recipient-signals-per-second',
        values['recipient-signals-per-second'],
        400,
      ),
      maxRoomMembers: int('max-room-members', values['max-room-members'], 256),
      roomChangesPerSecond: int('room-changes-per-second', values['room-changes-per-second'], 20),
      peerRoomChangesPerSecond: int(
        'peer-room-changes-per-second',
        values['peer-room-changes-per-second'],
        2,
      ),
      memberPagesPerSecond: int('member-pages-per-second', values['member-pages-per-second'], 8),
      pairingPerPeerPerMinute: int('pairing-per-minute', values['pairing-per-minute'], 20),
    },
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`signaling: ${signal}, shutting down`);
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Machine-readable: tests and scripts wait for this exact line. Printed after the signal handlers are
  // in place, so whoever reads it may stop us at once.
  console.log(`listening ${server.url}`);
}

main().catch((err: unknown) => {
  console.error('signaling server failed to start:', err);
  process.exit(1);
});
