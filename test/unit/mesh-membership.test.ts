// Mesh membership without sockets: a member the room says left stays a member while its connection is
// open, and that connection is probed at once (a dead member fails the probe long before its heartbeat,
// a live one behind a signaling outage answers); a member with no connection is gone at once; a member
// back in the room before its connection closed never left. docs/MESH.md, PROTOCOL.md §12.1.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { PeerId } from '../../src/identity/peer-id.js';
import { Membership } from '../../src/mesh/membership.js';
import type { MeshHost } from '../../src/mesh/pool.js';

const [self, b, c, stranger] = ['a', 'b', 'c', 'd'].map((ch) => ch.repeat(52) as PeerId) as [
  PeerId,
  PeerId,
  PeerId,
  PeerId,
];

function membership(connected: Set<PeerId>) {
  const events: string[] = [];
  const paired = new Set([b, c]);
  const host = {
    peers: { lookup: async (p: PeerId) => (paired.has(p) ? { peerId: p } : undefined) },
  } as unknown as MeshHost;
  const m = new Membership({
    self,
    room: 'r',
    host,
    isOpen: () => true,
    isConnected: (p) => connected.has(p),
    probe: (p) => events.push(`probe ${p[0]}`),
    joined: (p) => events.push(`joined ${p[0]}`),
    left: (p) => events.push(`left ${p[0]}`),
  });
  return { m, events };
}

it('a connected member the room says left is probed and stays until its connection closes', async () => {
  const connected = new Set([b]);
  const { m, events } = membership(connected);
  await m.sync([self, b, c, stranger]);
  assert.deepEqual(events, ['joined b', 'joined c'], 'only paired peers are members');
  assert.deepEqual(m.ring, [self, b, c].sort());

  m.leftRoom(b);
  m.leftRoom(c);
  assert.deepEqual(events.slice(2), ['probe b', 'left c'], 'b is probed, c (no connection) is gone');
  assert.ok(m.has(b) && !m.has(c));

  // The probe went unanswered: the connection closes, and b is gone.
  connected.delete(b);
  m.connectionClosed(b);
  await m.enqueue(() => {});
  assert.deepEqual(events.slice(4), ['left b']);
  assert.ok(!m.has(b));
});

it('a member back in the room before its connection closed never left', async () => {
  const connected = new Set([b]);
  const { m, events } = membership(connected);
  await m.sync([self, b]);
  m.leftRoom(b);
  await m.add(b);
  m.connectionClosed(b);
  await m.enqueue(() => {});
  assert.deepEqual(events, ['joined b', 'probe b'], 'no left event: it answered by coming back');
  assert.ok(m.has(b));
});
