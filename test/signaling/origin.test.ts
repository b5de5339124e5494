// Issue 13 point 2: a login proof names the server origin it was made for, and a server accepts only the
// origins of its own configuration (its listen URL, localhost for a loopback bind, `publicOrigins`), never
// what the Host or X-Forwarded-Host header of the request claims: the client chooses those headers.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Server, type Socket } from 'socket.io';
import { io } from 'socket.io-client';
import { Identity } from '../../src/identity/index.js';
import { SignalingClient } from '../../src/signaling/client.js';
import { type SignalingProcess, startSignalingProcess } from '../helpers/processes.js';
import { ask, authRequest, disconnected, errorCode, rawConnect } from './_util.js';

type Ack = (answer: unknown) => void;

/**
 * Server E of the attack: victims log in to it; for each, it opens a connection to the honest server R
 * claiming E's own host in `header` (Host, or X-Forwarded-Host), passes R's challenge to the victim and
 * the victim's proof (signed for E's origin) back to R. `answers` gets R's verdict on each relayed proof.
 */
class RelayingServer {
  url = '';
  readonly answers: Promise<unknown>[] = [];
  private readonly http = createServer();
  private readonly io = new Server(this.http);

  constructor(target: string, header: 'host' | 'x-forwarded-host') {
    this.io.on('connection', (victim: Socket) => {
      const upstream = io(target, {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
        extraHeaders: { [header]: new URL(this.url).host },
      });
      upstream.once('challenge', (c: unknown) => victim.emit('challenge', c));
      victim.on('auth', (req: unknown, ack: Ack) => {
        const answer = upstream.timeout(10_000).emitWithAck('auth', req);
        this.answers.push(answer);
        // The victim is told all is well either way, as a malicious server would.
        ack({ ok: true, peerId: (req as { identity: { peerId: string } }).identity.peerId });
      });
      victim.on('disconnect', () => upstream.close());
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return this.io.close();
  }
}

describe('signaling login is bound to the server’s configured origins (real server processes)', () => {
  let plain: SignalingProcess;
  let proxied: SignalingProcess;
  let victim: Identity;
  let other: Identity;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    [plain, proxied, victim, other] = await Promise.all([
      startSignalingProcess(),
      startSignalingProcess({ args: ['--trust-proxy', '--public-origin', 'https://signal.example.org'] }),
      Identity.generate(),
      Identity.generate(),
    ]);
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await Promise.all([plain?.kill(), proxied?.kill()]);
  });

  /** The victim online at `server` in its own right, and a relay attack through E claiming `header`. */
  async function relayAttack(server: SignalingProcess, header: 'host' | 'x-forwarded-host') {
    const own = new SignalingClient({ url: server.url, identity: victim });
    const watcher = new SignalingClient({ url: server.url, identity: other });
    const evil = new RelayingServer(server.url, header);
    closers.push(
      () => own.close(),
      () => watcher.close(),
      () => evil.close(),
    );
    await Promise.all([own.connect(), watcher.connect(), evil.start()]);
    const fooled = new SignalingClient({ url: evil.url, identity: victim });
    closers.push(() => fooled.close());
    await fooled.connect();
    assert.equal(evil.answers.length, 1);
    const verdict = await evil.answers[0];
    assert.equal(
      errorCode(verdict),
      'auth_failed',
      `the relayed proof was answered ${JSON.stringify(verdict)}`,
    );
    // The victim's own session was not replaced: it still answers (a replaced one fails `replaced`), and
    // the server still lists the victim online for others.
    await own.lookup(other.peerId);
    assert.equal(own.isAuthenticated, true);
    assert.equal((await watcher.lookup(victim.peerId)).online, true);
    await Promise.all([fooled.close(), own.close(), watcher.close(), evil.close()]);
  }

  it('refuses a proof relayed by another server that claims its own host in the Host header', () =>
    relayAttack(plain, 'host'));

  it('refuses it too behind --trust-proxy, with the other server’s host in X-Forwarded-Host', () =>
    relayAttack(proxied, 'x-forwarded-host'));

  it('accepts proofs for its listen URL, for localhost on a loopback bind and for each --public-origin', async () => {
    const port = new URL(plain.url).port;
    const cases: Array<[SignalingProcess, string, string | undefined]> = [
      [plain, plain.url, undefined],
      [plain, `http://localhost:${port}`, undefined],
      [plain, `ws://127.0.0.1:${port}`, undefined],
      [proxied, proxied.url, undefined],
      // Behind the proxy the Host header is whatever the proxy sends; the configured origin decides.
      [proxied, 'https://signal.example.org', undefined],
      [proxied, 'wss://signal.example.org', 'signal.example.org'],
    ];
    for (const [server, origin, host] of cases) {
      const { socket, challenge } = rawConnect(server.url, host ? { 'x-forwarded-host': host } : undefined);
      const ack = await ask(socket, 'auth', await authRequest(other, origin, await challenge));
      assert.equal(errorCode(ack), undefined, `${origin}: ${JSON.stringify(ack)}`);
      socket.disconnect();
    }
  });

  it('refuses proofs for any other origin, whatever Host and X-Forwarded-Host say', async () => {
    const port = Number(new URL(plain.url).port);
    const cases: Array<[SignalingProcess, string]> = [
      [plain, `http://127.0.0.1:${port + 1}`],
      [plain, `http://127.0.0.2:${port}`],
      [plain, 'http://evil.example'],
      [proxied, 'https://evil.example'],
      [proxied, 'http://signal.example.org'],
    ];
    for (const [server, origin] of cases) {
      const host = new URL(origin).host;
      const { socket, challenge } = rawConnect(server.url, { host, 'x-forwarded-host': host });
      const ack = await ask(socket, 'auth', await authRequest(other, origin, await challenge));
      assert.equal(errorCode(ack), 'auth_failed', origin);
      await disconnected(socket);
    }
  });
});
