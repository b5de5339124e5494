// A loopback-only network namespace for tests and benchmarks. Candidate filters keep WebRTC's
// destinations on loopback, but the stacks still open sockets on every interface; in a namespace whose
// only interface is `lo`, nothing else exists to be touched. Root (CI) gets a plain network namespace,
// others a user one.
import { spawnSync } from 'node:child_process';
import { ensureApt } from './ensure-deps.mjs';

/** Set inside the namespace, so a script that re-executes itself does it once. */
export const NETNS_ENV = 'P2PTLS_LOOPBACK_NETNS';

/**
 * `[command, argsPrefix]` that runs `cmd ...args` as `command ...argsPrefix, cmd, ...args` in a fresh
 * loopback-only namespace, or null when this machine cannot create one.
 */
export function loopbackNamespace() {
  for (const flags of [['-n'], ['-r', '-n']]) {
    if (spawnSync('unshare', [...flags, 'true']).status === 0) {
      return [
        'unshare',
        [...flags, '--', 'env', `${NETNS_ENV}=1`, 'sh', '-c', 'ip link set lo up && exec "$0" "$@"'],
      ];
    }
  }
  return null;
}

/**
 * Re-runs this Node script (same arguments) inside a loopback-only namespace unless already inside one;
 * returns true in the process that should do the work, or exits with the child's status. `packages`
 * (`[binary, Debian package]` pairs) are apt-installed first when missing: inside the namespace apt-get
 * has no network, so a fresh machine could not install them there.
 * @param {ReadonlyArray<readonly [string, string]>} [packages]
 */
export function reexecInLoopbackNamespace(packages = []) {
  if (process.env[NETNS_ENV] === '1') return true;
  for (const [binary, pkg] of packages) ensureApt(binary, pkg);
  const ns = loopbackNamespace();
  if (!ns) {
    console.warn('[netns] cannot create a network namespace (unshare): running without loopback isolation');
    return true;
  }
  const r = spawnSync(ns[0], [...ns[1], process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
