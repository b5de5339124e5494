// `npm run stress:close` — the close and crash suites, run again and again while busy-loop processes
// saturate the CPU (issue 12: a test that passes only on an idle machine is a bug). Stops at the first
// failing run and says which; prints `N passed, M failed` at the end.
//
//   --runs N        close suites this many times (default 50)
//   --cli-runs N    the CLI connect ↔ listen pipe test this many times (default 20)
//   --burners N     busy-loop processes beside it (default: one per core)
//   --keep-going    run every round even after a failure
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reexecInLoopbackNamespace } from './netns.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const flag = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const runs = flag('--runs', 50);
const cliRuns = flag('--cli-runs', 20);
const burners = flag('--burners', availableParallelism());
const keepGoing = process.argv.includes('--keep-going');

if (!reexecInLoopbackNamespace()) process.exit(0);

const rounds = [
  {
    name: 'close and crash (test/host/close.test.ts, lifecycle.test.ts)',
    times: runs,
    args: ['test/host/close.test.ts', 'test/host/lifecycle.test.ts'],
  },
  {
    name: 'CLI connect ↔ listen pipe (test/cli/peers.test.ts, after the pairing it needs)',
    times: cliRuns,
    args: [
      '--test-name-pattern=pair by invite',
      '--test-name-pattern=connect ↔ listen',
      'test/cli/peers.test.ts',
    ],
  },
];

const load = Array.from({ length: burners }, () =>
  spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }),
);
const stopLoad = () => {
  for (const p of load) p.kill('SIGKILL');
};
process.on('exit', stopLoad);
console.log(`[stress] ${burners} busy-loop process(es) saturate the CPU`);

let passed = 0;
let failed = 0;
for (const round of rounds) {
  for (let i = 1; i <= round.times; i++) {
    const t0 = performance.now();
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-force-exit', ...round.args],
      // Traced (DEBUG=p2ptls:*), so that a failing run shows which side ended and why.
      {
        cwd: root,
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
        env: { ...process.env, DEBUG: process.env.DEBUG ?? 'p2ptls:*' },
      },
    );
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    if (r.status === 0) {
      passed++;
      console.log(`[stress] ${round.name}: run ${i}/${round.times} passed (${s} s)`);
      continue;
    }
    failed++;
    console.log(`[stress] ${round.name}: run ${i}/${round.times} FAILED (${s} s)`);
    console.log(
      r.stdout
        .split('\n')
        .filter((l) => !l.includes(' p2ptls:'))
        .join('\n')
        .slice(-12000),
    );
    console.log(r.stderr.slice(-4000));
    if (!keepGoing) break;
  }
  if (failed && !keepGoing) break;
}
stopLoad();
console.log(`stress: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
