// Issue 13, point 9: pairing is a service in src/pairing that uses the signaling client only as a
// transport. Checked on the source: src/pairing never imports src/signaling (so the two folders cannot
// form an import cycle), and the signaling client holds no pairing protocol.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/processes.js';

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, dir, f));
}

describe('pairing and signaling structure (issue 13, point 9)', () => {
  it('src/pairing does not import src/signaling', () => {
    for (const file of sources('src/pairing')) {
      for (const spec of importsOf(file)) {
        assert.ok(!/(^|\/)signaling\//.test(spec), `${file} imports ${spec}`);
      }
    }
  });

  it('the signaling client is a transport: it imports nothing of the pairing protocol but its schema', () => {
    const allowed = new Set(['../pairing/schema.js']);
    for (const file of sources('src/signaling')) {
      for (const spec of importsOf(file)) {
        if (/(^|\/)pairing\//.test(spec)) assert.ok(allowed.has(spec), `${file} imports ${spec}`);
      }
    }
  });
});
