/**
 * What every command needs: the global options, the data directory (identity + LevelDB peer store), a
 * signaling client and a host, and a scope that closes all of them in reverse order however the
 * command ends.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fail, isP2PTLSError } from '../errors.js';
import type { WritablePeerList } from '../host/host.js';
import { Host } from '../host/host.js';
import type { Identity } from '../identity/identity.js';
import { nodeCryptoAead } from '../runtime/node-aead.js';
import { nodeHandshakeCrypto } from '../runtime/node-handshake.js';
import { type NodeRtcBackend, nodeRtc } from '../runtime/node-rtc.js';
import { SignalingClient } from '../signaling/client.js';
import { openLevelPeerStore } from '../store/level.js';
import type { PeerStore } from '../store/types.js';
import { loopbackOnly } from '../transport/rtc.js';

/** Default signaling server: loopback, so nothing leaves the machine unless asked to. */
export const DEFAULT_SIGNAL_URL = 'http://127.0.0.1:8080';

/** Options every command accepts (commander's global options, after validation). */
export interface GlobalOptions {
  /** Data directory: identity and paired peers. */
  readonly data: string;
  /** Signaling server URL. */
  readonly signal: string;
  /** Whether `--signal` was given (an invite's own URL is used otherwise). */
  readonly signalGiven: boolean;
  /** Machine-readable output on stdout. */
  readonly json: boolean;
  /** Stack traces on errors. */
  readonly debug: boolean;
  /** WebRTC stack. */
  readonly backend: NodeRtcBackend;
}

/** The data directory: `--data`, else `$P2PTLS_HOME`, else `~/.p2ptls`. */
export function defaultDataDir(): string {
  return process.env.P2PTLS_HOME || join(homedir(), '.p2ptls');
}

/** Parses and checks a signaling URL given on the command line. */
export function checkSignalUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw fail('invalid_argument', `--signal ${url} is not a URL (example: ${DEFAULT_SIGNAL_URL})`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw fail('invalid_argument', `--signal must be an http(s) or ws(s) URL, not ${u.protocol}`);
  }
  return url;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Cleanups run in reverse order of registration, once, whatever happened. */
export class Scope {
  private readonly cleanups: (() => unknown)[] = [];
  private closing: Promise<void> | undefined;

  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const fn of this.cleanups.reverse()) {
        try {
          await fn();
        } catch {
          // Teardown errors must not hide the command's own result.
        }
      }
    })();
    return this.closing;
  }
}

/**
 * What a command wants said when Ctrl-C (or SIGTERM) stops it: each note runs once, in registration
 * order, before the process prints `interrupted` (or, for commands that run until stopped, stops). A note may tidy the terminal (end a
 * progress bar) and return a line for the user, e.g. how to resume.
 */
export class InterruptNotes {
  private readonly notes: (() => string | undefined)[] = [];
  private fired = false;

  add(note: () => string | undefined): void {
    this.notes.push(note);
  }

  /** Runs the notes (once) and returns their lines. */
  fire(): string[] {
    if (this.fired) return [];
    this.fired = true;
    const lines: string[] = [];
    for (const note of this.notes) {
      try {
        const line = note();
        if (line) lines.push(line);
      } catch {
        // A note must not keep the process from stopping.
      }
    }
    return lines;
  }
}

/** Human lines go to stderr, results to stdout (JSON with --json), so pipes carry only data. */
export class Output {
  constructor(readonly json: boolean) {}

  /** A progress or status line for people; silent in --json mode. */
  info(line: string): void {
    if (!this.json) process.stderr.write(`${line}\n`);
  }

  /** The command's result: `value` as one JSON line with --json, else `human` (if any) on stdout. */
  result(value: unknown, human?: string): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value)}\n`);
    else if (human !== undefined) process.stdout.write(`${human}\n`);
  }
}

const storePath = (dataDir: string) => join(dataDir, 'store');

/** The store's encryption: a passphrase from P2PTLS_PASSPHRASE, or none (the directory is 0700). */
function encryption(): string | { mode: 'unencrypted' } {
  const passphrase = process.env.P2PTLS_PASSPHRASE;
  return passphrase ? passphrase : { mode: 'unencrypted' };
}

/** Opens the peer store of `dataDir`; `create` makes the directory when missing. */
export async function openStore(dataDir: string, scope: Scope, create: boolean): Promise<PeerStore> {
  const dir = resolve(dataDir);
  if (!create && !existsSync(join(storePath(dir), 'CURRENT'))) {
    throw fail('no_identity', `no identity in ${dir}: run \`p2ptls id\` first (or pass --data DIR)`);
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fail('file_error', `cannot create the data directory ${dir}: ${(err as Error).message}`, err);
  }
  let store: PeerStore;
  try {
    store = await openLevelPeerStore({ path: storePath(dir), encryption: encryption() });
  } catch (err) {
    if (isP2PTLSError(err, 'store_locked')) {
      throw fail(
        'store_locked',
        `the data directory ${dir} is in use by another p2ptls process (one command per data directory at a time)`,
        err,
      );
    }
    if (isP2PTLSError(err, 'wrong_passphrase')) {
      const hint = process.env.P2PTLS_PASSPHRASE
        ? 'P2PTLS_PASSPHRASE does not open it'
        : 'set P2PTLS_PASSPHRASE to its passphrase';
      throw fail('wrong_passphrase', `cannot open the data directory ${dir}: ${hint}`, err);
    }
    throw err;
  }
  scope.defer(() => store.close());
  return store;
}

/** The identity stored in `store`, or a `no_identity` error. */
export async function requireIdentity(store: PeerStore, dataDir: string): Promise<Identity> {
  const identity = await store.getIdentity();
  if (!identity) {
    throw fail('no_identity', `no identity in ${resolve(dataDir)}: run \`p2ptls id\` first`);
  }
  return identity;
}

/** Checks that something answers at the signaling URL, so that a typo fails fast and in plain words. */
export async function checkSignalingReachable(url: string): Promise<void> {
  const health = new URL('/healthz', url.replace(/^ws/, 'http'));
  try {
    const res = await fetch(health, { signal: AbortSignal.timeout(5_000) });
    await res.body?.cancel();
  } catch (err) {
    const why =
      (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED'
        ? 'connection refused'
        : (err as Error).name === 'TimeoutError'
          ? 'no answer within 5 s'
          : ((err as { cause?: Error }).cause?.message ?? (err as Error).message);
    throw fail(
      'unreachable',
      `cannot reach the signaling server at ${url} (${why}); start one with \`p2ptls signal\` or pass --signal URL`,
      err,
    );
  }
}

/** A connected, authenticated signaling client for `identity`. */
export async function connectSignaling(
  url: string,
  identity: Identity,
  scope: Scope,
): Promise<SignalingClient> {
  await checkSignalingReachable(url);
  const signaling = new SignalingClient({ url, identity });
  scope.defer(() => signaling.close());
  await signaling.connect();
  return signaling;
}

/** Starts a host on the CLI's defaults: loopback-only ICE when the signaling server is on loopback. */
export async function startHost(
  options: GlobalOptions,
  identity: Identity,
  peers: WritablePeerList,
  signaling: SignalingClient,
  scope: Scope,
): Promise<Host> {
  const loopback = isLoopbackUrl(signaling.url);
  const rtc = await nodeRtc(options.backend, loopback ? { bindAddress: '127.0.0.1' } : {});
  const host = await Host.start({
    identity,
    peers,
    signaling,
    rtc,
    aead: nodeCryptoAead,
    handshakeCrypto: nodeHandshakeCrypto,
    ...(loopback ? { candidateFilter: loopbackOnly } : {}),
  });
  scope.defer(() => host.close());
  return host;
}
