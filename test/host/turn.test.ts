// TURN: a real coturn on 127.0.0.1 (apt-installed when missing), hosts with iceTransportPolicy 'relay'
// connect through it, exchange in both modes, and stats() reports relay candidates.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { Connection } from '../../src/host/connection.js';
import type { Identity } from '../../src/identity/identity.js';
import {
  autoAccept,
  type Backend,
  type Env,
  nextMessage,
  startEnv,
  text,
  withCode,
  within,
} from '../helpers/hosts.js';
import { freePort, type ManagedProcess, ROOT, spawnProcess } from '../helpers/processes.js';

async function startCoturn(): Promise<{ port: number; proc: ManagedProcess; dir: string }> {
  const depsUrl = pathToFileURL(join(ROOT, 'scripts', 'ensure-deps.mjs')).href;
  const deps = (await import(depsUrl)) as { ensureApt: (binary: string, pkg: string) => string };
  const bin = deps.ensureApt('turnserver', 'coturn');
  const dir = mkdtempSync(join(tmpdir(), 'p2ptls-turn-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const minPort = 20_000 + Math.floor(Math.random() * 20_000);
    const proc = spawnProcess(bin, [
      '-n',
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      `--listening-port=${port}`,
      `--min-port=${minPort}`,
      `--max-port=${minPort + 200}`,
      '--allow-loopback-peers',
      '--lt-cred-mech',
      '--user=u:p',
      '--realm=test',
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      '--log-file=stdout',
      '--simple-log',
      '-v',
      `--pidfile=${join(dir, 'turnserver.pid')}`,
      `--userdb=${join(dir, 'turndb')}`,
    ]);
    try {
      await proc.waitForLine(/Total General servers/, 20_000);
      // The listeners open right after the relay threads.
      await new Promise((r) => setTimeout(r, 300));
      if (proc.child.exitCode !== null) throw new Error('coturn exited');
      return { port, proc, dir };
    } catch (err) {
      await proc.kill();
      if (attempt >= 2) throw err;
    }
  }
}

describe('TURN relay through a real coturn on 127.0.0.1', () => {
  let env: Env;
  let turn: Awaited<ReturnType<typeof startCoturn>> | undefined;
  before(async () => {
    [env, turn] = await Promise.all([startEnv(4), startCoturn()]);
  });
  after(async () => {
    await env?.close();
    await turn?.proc.kill();
    if (turn) rmSync(turn.dir, { recursive: true, force: true });
  });

  it('node-datachannel, which does not enforce relay-only ICE, refuses relay-only dials instead of leaking host addresses', async () => {
    assert.ok(turn);
    const relay = {
      iceServers: [{ urls: `turn:127.0.0.1:${turn.port}?transport=udp`, username: 'u', credential: 'p' }],
      iceTransportPolicy: 'relay' as const,
    };
    const [a, b] = [env.ids[2] as Identity, env.ids[3] as Identity];
    const ha = await env.host(a, { peers: [b], backend: 'node-datachannel', ...relay });
    const hb = await env.host(b, { peers: [a], backend: 'wrtc', ...relay });
    try {
      await assert.rejects(within(ha.connect(b.peerId), 10_000, 'connect'), withCode('invalid_argument'));
      // The same for a peer that is not in the list: the dial's link is refused before its keys are read,
      // and their unknown_peer must not surface anywhere else (an unhandled rejection would fail the run).
      const stranger = env.ids[0] as Identity;
      await assert.rejects(
        within(ha.connect(stranger.peerId), 10_000, 'connect'),
        withCode('invalid_argument'),
      );
      await new Promise((r) => setImmediate(r));
      assert.equal(ha.openConnections.length, 0);
    } finally {
      await env.closeHost(ha);
      await env.closeHost(hb);
    }
  });

  (['wrtc'] as Backend[]).forEach((backend, k) => {
    it(`${backend}: relay-only hosts connect through TURN and talk in both modes`, async () => {
      assert.ok(turn);
      const relay = {
        iceServers: [{ urls: `turn:127.0.0.1:${turn.port}?transport=udp`, username: 'u', credential: 'p' }],
        iceTransportPolicy: 'relay' as const,
      };
      const a = env.ids[2 * k] as Identity;
      const b = env.ids[2 * k + 1] as Identity;
      const allocations = () =>
        turn!.proc.lines.filter((l) => /user <u>: incoming packet ALLOCATE processed, success/.test(l))
          .length;
      const allocatedBefore = allocations();
      const ha = await env.host(a, { peers: [b], backend, ...relay });
      const hb = await env.host(b, { peers: [a], backend, ...relay });
      try {
        const acceptor = autoAccept(hb);
        const ca = await within(ha.connect(b.peerId), 25_000, 'connect through TURN');
        const cb = await acceptor.next();
        const toB = nextMessage(cb);
        await ca.send('via the relay');
        assert.equal(text(await toB), 'via the relay');
        const toA = nextMessage(ca);
        await cb.send('and back');
        assert.equal(text(await toA), 'and back');
        const dg = new Promise<string>((resolve) =>
          cb.datagrams.once('datagram', (d) => resolve(text(d.data))),
        );
        for (let i = 0; i < 20; i++) {
          await ca.datagrams.send('relayed datagram');
          if (await Promise.race([dg.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]))
            break;
        }
        assert.equal(await within(dg, 5_000, 'datagram'), 'relayed datagram');

        const types = async (c: Connection) => {
          const s = await c.stats();
          return [s.localCandidateType, s.remoteCandidateType];
        };
        const [la, ra] = await types(ca);
        const [lb, rb] = await types(cb);
        console.log(
          `# ${backend}: A ${la}/${ra}, B ${lb}/${rb}, coturn allocations ${allocations() - allocatedBefore}`,
        );
        // Both sides allocated on coturn (with the credentials) ...
        assert.ok(
          allocations() >= allocatedBefore + 2,
          `coturn saw ${allocations() - allocatedBefore} allocations`,
        );
        // ... and only gather relay candidates, so the selected pair is relay on both ends.
        assert.equal(la, 'relay', `A's local candidate is ${la}`);
        assert.equal(lb, 'relay', `B's local candidate is ${lb}`);
      } finally {
        await env.closeHost(ha);
        await env.closeHost(hb);
      }
    });
  });
});
