// Makes a fresh clone runnable: `npm test` and `npm start` call this first, so a new machine needs no
// install step beyond Node itself. npm packages come from the lockfile; Debian packages (chromium,
// redis-server, coturn) are installed with apt-get only when a test that needs them asks.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Runs `npm ci` when node_modules is missing or older than the lockfile. */
export function ensureNpm() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  console.log('[ensure-deps] installing npm packages from the lockfile (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

let aptUpdated = false;
/**
 * Installs a Debian package when `binary` is not on PATH. Returns the binary's path.
 * @param {string} binary
 * @param {string} pkg
 */
export function ensureApt(binary, pkg) {
  const found = which(binary);
  if (found) return found;
  console.log(`[ensure-deps] ${binary} not found: apt-get install ${pkg}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    aptUpdated = true;
  }
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], {
    stdio: 'inherit',
    env,
  });
  const installed = which(binary);
  if (!installed) throw new Error(`${pkg} installed but ${binary} is still not on PATH`);
  return installed;
}

function which(binary) {
  const r = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  ensureNpm();
  for (const spec of process.argv.slice(2)) {
    const [binary, pkg] = spec.split(':');
    ensureApt(binary, pkg ?? binary);
  }
}
