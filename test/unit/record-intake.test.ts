// RecordIntake (src/host/record-intake.ts) on its own, over a stand-in session whose receive() the test
// settles record by record: how many records are with the session at once, the order they reach it in,
// what counts as still in process, and when "everything received so far is processed" holds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fail } from '../../src/errors.js';
import { type IntakeSession, RecordIntake } from '../../src/host/record-intake.js';
import type { SessionEvent } from '../../src/protocol/index.js';

/** A session whose receive() of each record settles when the test says. */
function standInSession() {
  const calls: { record: Uint8Array; resolve: (e: SessionEvent[]) => void; reject: (e: unknown) => void }[] =
    [];
  let receivedCalls = 0;
  const session: IntakeSession = {
    receive: (record) =>
      new Promise<SessionEvent[]>((resolve, reject) => {
        calls.push({ record, resolve, reject });
      }),
    received: () => {
      receivedCalls++;
      return Promise.resolve();
    },
  };
  return { session, calls, receivedCalls: () => receivedCalls };
}

/** What the intake handed on, in order. */
function recorder() {
  const log: string[] = [];
  return {
    log,
    output: {
      processed: (events: SessionEvent[]) => log.push(`processed ${events.length}`),
      refused: (err: unknown) => log.push(`refused ${(err as { code?: string }).code}`),
    },
  };
}

const record = (n: number) => new Uint8Array([n]);
/** Lets promise reactions run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('RecordIntake', () => {
  it('has at most four records with the session at once, handed over in arrival order', async () => {
    const { session, calls } = standInSession();
    const { log, output } = recorder();
    const intake = new RecordIntake(session, output);
    for (let i = 0; i < 7; i++) intake.push(record(i));
    assert.equal(calls.length, 4, 'four decrypting, three waiting');
    assert.equal(intake.pending, 7);
    calls[1]!.resolve([]);
    await turn();
    assert.equal(calls.length, 5, 'a finished record gives its slot to the next one waiting');
    assert.deepEqual(
      calls.map((c) => c.record[0]),
      [0, 1, 2, 3, 4],
    );
    assert.equal(intake.pending, 6);
    for (const c of calls) c.resolve([]);
    await turn();
    for (const c of calls.slice(5)) c.resolve([]);
    await turn();
    assert.deepEqual(
      calls.map((c) => c.record[0]),
      [0, 1, 2, 3, 4, 5, 6],
    );
    assert.equal(intake.pending, 0);
    assert.equal(log.length, 7);
  });

  it('reports a refused record, and the records behind it still get their turn', async () => {
    const { session, calls } = standInSession();
    const { log, output } = recorder();
    const intake = new RecordIntake(session, output);
    for (let i = 0; i < 5; i++) intake.push(record(i));
    calls[0]!.reject(fail('bad_record_mac', 'forged'));
    await turn();
    assert.deepEqual(log, ['refused bad_record_mac']);
    assert.equal(calls.length, 5);
    assert.equal(intake.pending, 4);
  });

  it('says everything is processed only once the waiting records have reached the session', async () => {
    const { session, calls, receivedCalls } = standInSession();
    const { output } = recorder();
    const intake = new RecordIntake(session, output);
    for (let i = 0; i < 6; i++) intake.push(record(i));
    let done = false;
    void intake.allProcessed().then(() => {
      done = true;
    });
    await turn();
    assert.equal(done, false, 'two records are still waiting for a slot');
    assert.equal(receivedCalls(), 0);
    calls[0]!.resolve([]);
    await turn();
    assert.equal(done, false, 'one still waiting');
    calls[1]!.resolve([]);
    await turn();
    assert.equal(calls.length, 6);
    assert.equal(receivedCalls(), 1, "then the session's own received() decides");
    assert.equal(done, true);
  });

  it('with nothing waiting, asks the session at once', async () => {
    const { session, receivedCalls } = standInSession();
    const intake = new RecordIntake(session, recorder().output);
    intake.push(record(0));
    await intake.allProcessed();
    assert.equal(receivedCalls(), 1);
  });
});
