// The receiver writes a file under the name the sending peer chose: only a plain name directly inside the
// output directory may pass (no traversal, no hidden or special files, no control characters).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MAX_FILE_NAME_BYTES } from '../../src/cli/session.js';
import { checkFileName, MAX_RECEIVED_NAME_BYTES, partFileName } from '../../src/cli/transfer.js';
import { withCode } from '../helpers/hosts.js';

it('checkFileName passes plain names and refuses everything that could leave the output directory', () => {
  for (const ok of ['weights.bin', 'report 2026.pdf', 'ünïcødé-✓.txt', 'a'.repeat(MAX_RECEIVED_NAME_BYTES)]) {
    assert.equal(checkFileName(ok), ok);
  }
  for (const bad of [
    '',
    '.',
    '..',
    '../etc/passwd',
    '..\\windows',
    'dir/file',
    '/absolute',
    'C:\\x',
    '.bashrc',
    '.weights.bin.p2ptls-part',
    'nul\0byte',
    'line\nbreak',
    'bell\u0007',
    'del\u007f',
    'é'.repeat(MAX_FILE_NAME_BYTES / 2 + 1),
    // Plain names, but too long for the part file's name.
    'a'.repeat(MAX_FILE_NAME_BYTES),
    'a'.repeat(MAX_RECEIVED_NAME_BYTES + 1),
    'é'.repeat(Math.floor(MAX_RECEIVED_NAME_BYTES / 2) + 1),
  ]) {
    assert.throws(() => checkFileName(bad), withCode('transfer_refused'), JSON.stringify(bad));
  }
});

it('the part file of the longest accepted name still fits a 255-byte file name', () => {
  const offer = {
    name: 'é'.repeat(Math.floor(MAX_RECEIVED_NAME_BYTES / 2)),
    size: 1,
    sha256: '0'.repeat(64),
  };
  assert.ok(Buffer.byteLength(checkFileName(offer.name)) >= MAX_RECEIVED_NAME_BYTES - 1);
  assert.ok(Buffer.byteLength(partFileName('a'.repeat(52), offer)) <= MAX_FILE_NAME_BYTES);
  const longest = { ...offer, name: 'a'.repeat(MAX_RECEIVED_NAME_BYTES) };
  assert.equal(Buffer.byteLength(partFileName('a'.repeat(52), longest)), MAX_FILE_NAME_BYTES);
});
