/**
 * In-process plumbing for tests, demos and benchmarks: two sessions joined by an in-memory reliable pipe
 * and an in-memory datagram pipe that can lose, reorder and duplicate. No sockets; no timers.
 */
import type { Identity } from '../identity/identity.js';
import {
  type HandshakeOptions,
  InitiatorHandshake,
  parseClientHello,
  ResponderHandshake,
  Session,
  type SessionOptions,
  type SessionOutput,
} from '../protocol/index.js';

/** Decides the fate of one datagram in flight: deliver it (maybe twice) or drop it. */
export type DatagramFate = (record: Uint8Array, index: number) => 'deliver' | 'drop' | 'duplicate';

export interface InMemoryEnd {
  session: Session;
  /** Records this end has sent on the reliable channel, in order (for inspection and tampering tests). */
  sentReliable: Uint8Array[];
  /** Datagrams this end has sent. */
  sentDatagrams: Uint8Array[];
}

/** Runs the full handshake between two identities over memory; returns the wired sessions. */
export async function connectInMemory(options: {
  initiator: Identity;
  responder: Identity;
  psk: Uint8Array;
  /** The responder's PSK (defaults to `psk`): set it to test a wrong-PSK peer. */
  responderPsk?: Uint8Array;
  handshake?: Partial<HandshakeOptions>;
  session?: SessionOptions;
  /**
   * Behave like a data channel's send, which copies: each record and datagram is copied as it is handed
   * over, and the sessions are told so (`copiesReliable`, `copiesDatagrams`), so they may put them
   * together in one buffer of their own.
   */
  copies?: boolean;
  /**
   * Each end's output instead of the recording one (`sentReliable` and `sentDatagrams` then stay empty):
   * for a harness that hands records on by itself, such as a channel that copies and delivers at once.
   */
  output?: (end: 'initiator' | 'responder') => SessionOutput;
}): Promise<{ initiator: InMemoryEnd; responder: InMemoryEnd }> {
  const { initiator: a, responder: b } = options;
  const init = await InitiatorHandshake.start({
    ...options.handshake,
    identity: a,
    peer: b.publicIdentity,
    psk: options.psk,
  });
  const incoming = parseClientHello(init.hello);
  const resp = await ResponderHandshake.accept(incoming, {
    ...options.handshake,
    identity: b,
    peer: a.publicIdentity,
    psk: options.responderPsk ?? options.psk,
  });
  const [sh, rAuth] = resp.records;
  await init.receive(sh!);
  const { records, result: iResult } = await init.receive(rAuth!);
  const rResult = await resp.receive(records[0]!);
  const ends = {
    initiator: { sentReliable: [], sentDatagrams: [] } as unknown as InMemoryEnd,
    responder: { sentReliable: [], sentDatagrams: [] } as unknown as InMemoryEnd,
  };
  for (const [name, end, result] of [
    ['initiator', ends.initiator, iResult!],
    ['responder', ends.responder, rResult],
  ] as const) {
    const recording: SessionOutput = {
      reliable: (r) => end.sentReliable.push(options.copies ? r.slice() : r),
      datagram: (d) => {
        end.sentDatagrams.push(options.copies ? d.slice() : d);
        return true;
      },
      copiesReliable: options.copies === true,
      copiesDatagrams: options.copies === true,
    };
    end.session = new Session(result, options.output?.(name) ?? recording, options.session);
  }
  return ends;
}

/** Delivers every reliable record `from` has sent so far to `to`, in order; returns the events. */
export async function pumpReliable(from: InMemoryEnd, to: InMemoryEnd) {
  const records = from.sentReliable.splice(0);
  const results = records.map((r) => to.session.receive(r));
  return (await Promise.all(results)).flat();
}

/** Delivers `from`'s datagrams to `to` through a lossy/reordering/duplicating channel. */
export async function pumpDatagrams(
  from: InMemoryEnd,
  to: InMemoryEnd,
  fate: DatagramFate = () => 'deliver',
  shuffle: (items: Uint8Array[]) => Uint8Array[] = (x) => x,
) {
  const inFlight: Uint8Array[] = [];
  from.sentDatagrams.splice(0).forEach((d, i) => {
    const f = fate(d, i);
    if (f !== 'drop') inFlight.push(d);
    if (f === 'duplicate') inFlight.push(d);
  });
  return Promise.all(shuffle(inFlight).map((d) => to.session.receiveDatagram(d)));
}
