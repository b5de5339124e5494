/**
 * `p2ptls`: the command line. Parses arguments with commander, runs one command, and turns every
 * failure into one plain line on stderr and a documented exit code (exit-codes.ts). Stack traces only
 * with --debug.
 */
import { Command, CommanderError, Option } from 'commander';
import { isP2PTLSError } from '../errors.js';
import {
  type CommandContext,
  connectCommand,
  idCommand,
  inviteCommand,
  listenCommand,
  pairCommand,
  pairsListCommand,
  pairsRemoveCommand,
  receiveCommand,
  sendCommand,
  signalCommand,
} from './commands.js';
import {
  checkSignalUrl,
  DEFAULT_SIGNAL_URL,
  defaultDataDir,
  type GlobalOptions,
  InterruptNotes,
  Output,
  Scope,
} from './context.js';
import { EXIT_CODES_HELP, ExitCodes, exitCodeFor } from './exit-codes.js';

interface RawGlobals {
  data?: string;
  signal?: string;
  json?: boolean;
  debug?: boolean;
  backend: 'wrtc' | 'node-datachannel';
}

/** Commands that run until stopped: Ctrl-C is their normal end, so it exits 0 for them. */
const SERVERS = new Set(['listen', 'receive', 'signal']);

/** Writes everything still buffered for stdout before the process exits. */
function flushStdout(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

function explainError(err: unknown, debug: boolean): { line: string; code: number } {
  if (isP2PTLSError(err)) {
    const detail = debug
      ? `\n${err.stack ?? ''}${err.cause ? `\ncause: ${String((err.cause as Error).stack ?? err.cause)}` : ''}`
      : '';
    return { line: `p2ptls: ${err.message} [${err.code}]${detail}`, code: exitCodeFor(err.code) };
  }
  const e = err as Error;
  return {
    line: debug
      ? `p2ptls: unexpected error: ${e?.stack ?? String(err)}`
      : `p2ptls: unexpected error: ${e?.message ?? String(err)} (run again with --debug for details)`,
    code: ExitCodes.INTERNAL,
  };
}

/** Builds the program; `run` is called with the command name and the action. */
function buildProgram(
  run: (name: string, cmd: Command, action: (ctx: CommandContext) => Promise<void>) => Promise<void>,
) {
  const program = new Command('p2ptls')
    .description(
      'Peer to Peer TLS over WebRTC: pair with peers, then stream bytes and send files to them, encrypted and mutually authenticated.',
    )
    .option('--data <dir>', 'data directory: identity and paired peers (default: $P2PTLS_HOME or ~/.p2ptls)')
    .option('--signal <url>', `signaling server URL (default: ${DEFAULT_SIGNAL_URL})`)
    .option('--json', 'machine-readable output: one JSON object per line on stdout')
    .option('--debug', 'print stack traces on errors')
    .addOption(
      new Option('--backend <name>', 'WebRTC stack').choices(['wrtc', 'node-datachannel']).default('wrtc'),
    )
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Environment:
  P2PTLS_HOME         data directory when --data is not given
  P2PTLS_PASSPHRASE   passphrase that encrypts the data directory (set it before \`p2ptls id\`; without
                      it the directory is stored unencrypted, readable by your user only)

Two terminals on one machine:
  p2ptls signal &                                  # terminal 1: a signaling server on 127.0.0.1:8080
  p2ptls --data ./alice id && p2ptls --data ./bob id   # identities (one data directory each)
  p2ptls --data ./alice listen --invite --out ./inbox  # terminal 1: prints an invite in quotes, waits
  p2ptls --data ./bob pair 'p2ptls://invite?…' --label alice  # terminal 2: paste it with its quotes
  p2ptls --data ./bob connect alice                # terminal 2: type; lines appear in terminal 1
  p2ptls --data ./bob send alice ./file            # verified; run it again to resume if cut off

A peer is named by its label, its peerId, or a unique start of it (4 characters or more). A connect
session ends when both sides have ended their input (Ctrl-D), or on Ctrl-C on either side.

${EXIT_CODES_HELP}`,
    )
    .exitOverride();

  program
    .command('id')
    .description('show this identity (created on first use); --export prints the public part to share')
    .option('--export', 'print the public identity as JSON (safe to share)')
    .action(function (this: Command, opts: { export?: boolean }) {
      return run('id', this, (ctx) => idCommand(ctx, opts));
    });

  program
    .command('invite')
    .description('print an invite for `p2ptls pair` on another peer, and wait until it is used')
    .option('--ttl <duration>', 'how long the invite is valid (e.g. 90s, 10m, 2h)', '10m')
    .option('--no-wait', 'print the invite and exit (it then works only with `listen --accept-pairing`)')
    .action(function (this: Command, opts: { ttl: string; wait: boolean }) {
      return run('invite', this, (ctx) => inviteCommand(ctx, opts));
    });

  program
    .command('pair')
    .description('pair with the peer that made <invite> (it must be running `invite` or `listen`)')
    .argument('<invite>', 'the p2ptls://invite?… string (or a bare peerId, for `listen --accept-pairing`)')
    .option('--label <name>', 'a name for this peer in `p2ptls pairs`')
    .option('--timeout <duration>', 'how long to wait for the other side to answer', '2m')
    .action(function (this: Command, invite: string, opts: { label?: string; timeout: string }) {
      return run('pair', this, (ctx) => pairCommand(ctx, invite, opts));
    });

  const pairs = program
    .command('pairs')
    .description('list paired peers; `pairs remove <peerId>` forgets one');
  pairs
    .command('list', { isDefault: true })
    .description('list paired peers')
    .action(function (this: Command) {
      return run('pairs', this, (ctx) => pairsListCommand(ctx));
    });
  pairs
    .command('remove')
    .description('forget a paired peer')
    .argument('<peer>', 'a label, a peerId or a unique start of one (see `p2ptls pairs`)')
    .action(function (this: Command, peerId: string) {
      return run('pairs remove', this, (ctx) => pairsRemoveCommand(ctx, peerId));
    });

  program
    .command('listen')
    .description('accept connections from paired peers: streams ↔ stdin/stdout, files with --out')
    .option(
      '--accept-pairing',
      'accept every pairing request (default: only holders of an invite from --invite)',
    )
    .option('--invite', 'print an invite first; its holder may pair while this runs')
    .option('--out <dir>', 'accept files from paired peers into this directory')
    .option('--once', 'exit after the first session, with its outcome as exit code')
    .action(function (
      this: Command,
      opts: { acceptPairing?: boolean; invite?: boolean; out?: string; once?: boolean },
    ) {
      return run('listen', this, (ctx) => listenCommand(ctx, opts));
    });

  program
    .command('connect')
    .description('open a stream to a paired peer: stdin → peer, peer → stdout; EOF on stdin ends it')
    .argument('<peer>', 'a label, a peerId or a unique start of one (see `p2ptls pairs`)')
    .action(function (this: Command, peerId: string) {
      return run('connect', this, (ctx) => connectCommand(ctx, peerId));
    });

  program
    .command('send')
    .description(
      'send a file to a paired peer running `receive` (or `listen --out`); SHA-256 verified, resumable',
    )
    .argument('<peer>', 'a label, a peerId or a unique start of one (see `p2ptls pairs`)')
    .argument('<file>')
    .action(function (this: Command, peerId: string, file: string) {
      return run('send', this, (ctx) => sendCommand(ctx, peerId, file));
    });

  program
    .command('receive')
    .description('receive a file from a paired peer (exits after one unless --keep)')
    .option('--out <dir>', 'directory for received files', '.')
    .option('--keep', 'keep receiving until stopped')
    .option('--accept-pairing', 'accept every pairing request')
    .option('--invite', 'print an invite first; its holder may pair while this runs')
    .action(function (
      this: Command,
      opts: { out: string; keep?: boolean; acceptPairing?: boolean; invite?: boolean },
    ) {
      return run('receive', this, (ctx) => receiveCommand(ctx, opts));
    });

  program
    .command('signal')
    .description('run a signaling server (prints `listening <url>`)')
    .option('--port <port>', 'TCP port (0 picks a free one)', '8080')
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--log-level <level>', 'pino log level of the server (logs go to stderr)', 'warn')
    .action(function (this: Command, opts: { port: string; host: string; logLevel: string }) {
      return run('signal', this, (ctx) => signalCommand(ctx, opts));
    });

  program
    .command('bench')
    .description('measure pairing, connect time and throughput between two hosts in this process')
    .option('--size <MiB>', 'TCP-mode volume', '64')
    .option('--message <KiB>', 'TCP-mode message size', '64')
    .option('--datagrams <n>', 'SLLP datagrams of 1 KiB', '2000')
    .action(function (this: Command, opts: { size: string; message: string; datagrams: string }) {
      return run('bench', this, async (ctx) => (await import('./bench.js')).benchCommand(ctx, opts));
    });

  return program;
}

/** Runs the CLI with `argv` (as process.argv) and exits the process with the command's exit code. */
export async function main(argv: string[] = process.argv): Promise<never> {
  let debug = argv.includes('--debug');
  let exitCode: number = ExitCodes.OK;
  let scope: Scope | undefined;

  // Nothing from the network may end the process with a raw stack trace: anything that escapes is
  // reported like any other failure.
  const crash = (err: unknown) => {
    const d = explainError(err, debug);
    process.stderr.write(`${d.line}\n`);
    void (scope?.close() ?? Promise.resolve()).finally(() => process.exit(d.code));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  // A reader that stopped reading (`p2ptls --help | head`) is not a failure of ours: stop quietly, as
  // other command-line tools do, instead of reporting an unexpected EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') return crash(err);
    void (scope?.close() ?? Promise.resolve()).finally(() => process.exit(exitCode));
  });

  const run = async (name: string, cmd: Command, action: (ctx: CommandContext) => Promise<void>) => {
    const raw = cmd.optsWithGlobals<RawGlobals>();
    debug = raw.debug ?? false;
    const g: GlobalOptions = {
      data: raw.data ?? defaultDataDir(),
      signal: checkSignalUrl(raw.signal ?? DEFAULT_SIGNAL_URL),
      signalGiven: raw.signal !== undefined,
      json: raw.json ?? false,
      debug,
      backend: raw.backend,
    };
    const localScope = new Scope();
    const interrupt = new InterruptNotes();
    scope = localScope;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const onSignal = (signal: NodeJS.Signals) => {
      // The notes first: they end a progress bar, so that these lines start on a line of their own.
      const notes = interrupt.fire();
      if (SERVERS.has(name)) {
        for (const line of notes) process.stderr.write(`p2ptls: ${line}\n`);
        stop();
        return;
      }
      process.stderr.write(`p2ptls: interrupted (${signal})\n`);
      for (const line of notes) process.stderr.write(`p2ptls: ${line}\n`);
      void localScope.close().finally(() => process.exit(ExitCodes.INTERRUPTED));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await action({ g, scope: localScope, out: new Output(g.json), stopped, interrupt });
    } finally {
      await localScope.close();
    }
  };

  const program = buildProgram(run);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; everything commander rejects is a usage error, already printed.
      exitCode = err.exitCode === 0 ? ExitCodes.OK : ExitCodes.USAGE;
    } else {
      const d = explainError(err, debug);
      process.stderr.write(`${d.line}\n`);
      exitCode = d.code;
    }
  }
  await flushStdout();
  process.exit(exitCode);
}
