// The server's zod-free signal check must accept exactly what SignalRequestSchema accepts: a valid
// request and every single-field mutation of it are run through both.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSignalRequest } from '../../signaling-server/signal-check.js';
import { Identity } from '../../src/identity/index.js';
import { MAX_PAYLOAD_BYTES, SignalRequestSchema } from '../../src/signaling/messages.js';
import { createSignedSignal } from '../../src/signaling/wire.js';

describe('zod-free signal check', () => {
  it('agrees with SignalRequestSchema on a valid request and its mutations', async () => {
    const [a, b] = await Promise.all([Identity.generate(), Identity.generate()]);
    const env = await createSignedSignal(a, b.peerId, { type: 'offer', sdp: 'v=0' });
    const values: unknown[] = [
      undefined,
      null,
      0,
      -1,
      1,
      2,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      2 ** 48,
      2 ** 48 + 1,
      -0,
      '',
      'x',
      'A'.repeat(22),
      'A'.repeat(21),
      'a'.repeat(52),
      'A'.repeat(52),
      '1'.repeat(52),
      'a'.repeat(53),
      'A'.repeat(16),
      'A'.repeat(15),
      'A'.repeat(700),
      'A'.repeat(701),
      'A+/=AAAAAAAAAAAAAAAAAAAA',
      // In the alphabet, but bits past the last byte (a nonce, a signature) or a length of 4n + 1.
      `${'A'.repeat(21)}B`,
      `${'A'.repeat(18)}B`,
      `${'A'.repeat(16)}B`,
      'x'.repeat(MAX_PAYLOAD_BYTES),
      'x'.repeat(MAX_PAYLOAD_BYTES + 1),
      [],
      {},
      [1],
      true,
    ];
    const cases: unknown[] = [
      { env },
      env,
      null,
      [],
      [{ env }],
      'env',
      { env, extra: 1 },
      { env: [env] },
      JSON.parse(`{"env":${JSON.stringify(env)},"__proto__":{}}`),
      { env: JSON.parse(`{${JSON.stringify(env).slice(1, -1)},"__proto__":1}`) },
      { env: { ...env, extra: 'x' } },
    ];
    for (const key of Object.keys(env)) {
      const { [key as keyof typeof env]: _dropped, ...without } = env;
      cases.push({ env: without });
      for (const v of values) cases.push({ env: { ...env, [key]: v } });
    }
    let accepted = 0;
    for (const c of cases) {
      const expected = SignalRequestSchema.safeParse(c).success;
      assert.equal(isSignalRequest(c), expected, JSON.stringify(c)?.slice(0, 200));
      if (expected) accepted++;
    }
    // Both accept the original and the mutations that stay valid (e.g. another valid timestamp).
    assert.ok(accepted >= 5, `${accepted} accepted`);
    assert.ok(cases.length - accepted >= 100, `${cases.length - accepted} refused`);
  });
});
