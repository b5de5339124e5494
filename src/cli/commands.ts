/**
 * The actions behind each `p2ptls` command. Each takes the parsed options and a context whose scope the
 * caller closes; each throws P2PTLSErrors only, which main.ts turns into one line and an exit code.
 */
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fail, isP2PTLSError, type P2PTLSError } from '../errors.js';
import type { Connection } from '../host/connection.js';
import type { Host } from '../host/host.js';
import type { Identity } from '../identity/identity.js';
import { isPeerId, type PeerId } from '../identity/peer-id.js';
import { type Invite, parseInvite } from '../pairing/invite.js';
import { PairingService } from '../pairing/service.js';
import type { PeerStore } from '../store/types.js';
import {
  connectSignaling,
  type GlobalOptions,
  type InterruptNotes,
  type Output,
  openStore,
  requireIdentity,
  type Scope,
  startHost,
} from './context.js';
import { describeMatch, matchPeer, shortId } from './peer-name.js';
import { describeBytes, describeRate, mbPerSecond, type Progress, progressBar } from './progress.js';
import { CliSession } from './session.js';
import { pipeSession, type StreamResult } from './stream.js';
import { isBeingReceived, receiveFile, sendFile, type TransferResult } from './transfer.js';

/** What every action gets. */
export interface CommandContext {
  readonly g: GlobalOptions;
  readonly scope: Scope;
  readonly out: Output;
  /** Resolves on Ctrl-C / SIGTERM for commands that run until stopped. */
  readonly stopped: Promise<void>;
  /** What to say when Ctrl-C stops a command that does not run until stopped. */
  readonly interrupt: InterruptNotes;
}

/** Parses `90s`, `10m`, `2h` or plain seconds into milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw fail('invalid_argument', `${option} ${text}: expected a duration such as 90s, 10m or 2h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * unit;
  if (!(ms > 0) || ms > 30 * 24 * 3_600_000)
    throw fail('invalid_argument', `${option} ${text} is out of range`);
  return Math.round(ms);
}

const short = shortId;

/**
 * An invite as a shell word: single quotes keep the shell from splitting it at `&` (an invite holds
 * only URL-safe characters, never a quote).
 */
const quoted = (invite: string) => `'${invite}'`;

/**
 * The paired peer `text` names (full peerId, unique prefix or label), saying what matched when it was
 * not the full id.
 */
async function resolvePeer(ctx: CommandContext, store: PeerStore, text: string): Promise<PeerId> {
  // A full peerId needs no listing (which reads, and decrypts, every record).
  const trimmed = text.trim();
  if (isPeerId(trimmed)) return trimmed;
  const { peers } = await store.list();
  const match = matchPeer(text, peers);
  const line = describeMatch(match);
  if (line) ctx.out.info(line);
  return match.peerId;
}

/** `p2ptls id`: shows the identity, creating it on first use. */
export async function idCommand(ctx: CommandContext, opts: { export?: boolean }): Promise<void> {
  const store = await openStore(ctx.g.data, ctx.scope, true);
  const existing = await store.getIdentity();
  const identity = existing ?? (await store.loadOrCreateIdentity());
  if (!existing) ctx.out.info(`created a new identity in ${resolve(ctx.g.data)}`);
  if (opts.export) {
    // The public part only: safe to hand to anyone.
    process.stdout.write(`${JSON.stringify(identity.exportPublic())}\n`);
    return;
  }
  ctx.out.result(
    { peerId: identity.peerId, created: !existing, dataDir: resolve(ctx.g.data), encrypted: store.encrypted },
    identity.peerId,
  );
}

async function identityAndStore(ctx: CommandContext): Promise<{ store: PeerStore; identity: Identity }> {
  const store = await openStore(ctx.g.data, ctx.scope, false);
  return { store, identity: await requireIdentity(store, ctx.g.data) };
}

/** `p2ptls invite`: prints an invite and (by default) waits for it to be used. */
export async function inviteCommand(
  ctx: CommandContext,
  opts: { ttl: string; wait: boolean },
): Promise<void> {
  const ttlMs = parseDuration(opts.ttl, '--ttl');
  const { store, identity } = await identityAndStore(ctx);
  const signaling = await connectSignaling(ctx.g.signal, identity, ctx.scope);
  const pairing = new PairingService({ identity, transport: signaling, records: store });
  ctx.scope.defer(() => pairing.close());
  // The service records the pair in the store before announcing it.
  const paired = new Promise<PeerId>((resolvePaired) => {
    pairing.on('paired', ({ peer, initiator }) => {
      if (!initiator) resolvePaired(peer.peerId);
    });
  });
  const invite = pairing.createInvite({ ttlMs });
  ctx.out.result({ invite, peerId: identity.peerId, expires: Date.now() + ttlMs }, quoted(invite));
  if (!opts.wait) {
    ctx.out.info(
      'not waiting: this invite works only while `p2ptls listen --accept-pairing` runs here (its one-time token is forgotten now)',
    );
    return;
  }
  ctx.out.info(`waiting up to ${Math.round(ttlMs / 1000)} s for the invite to be used (Ctrl-C to stop)…`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(fail('timeout', 'nobody used the invite before it expired')), ttlMs);
  });
  try {
    const peerId = await Promise.race([paired, expired, ctx.stopped.then(() => undefined)]);
    if (peerId === undefined) return;
    ctx.out.info(`paired with ${peerId}`);
    ctx.out.result({ paired: peerId }, undefined);
  } finally {
    clearTimeout(timer);
  }
}

const INVITE_PREFIX = 'p2ptls://invite?';

/**
 * Parses an invite given on the command line. An unquoted invite reaches us cut at its first `&` (the
 * shell ran the rest as separate commands): that is said in plain words, with how to quote it.
 */
function parseCliInvite(text: string): Invite {
  try {
    return parseInvite(text);
  } catch (err) {
    const t = text.trim();
    if (isP2PTLSError(err, 'bad_invite') && t.startsWith(INVITE_PREFIX) && !t.includes('&')) {
      throw fail(
        'bad_invite',
        `the invite looks cut at "&" (${JSON.stringify(t.slice(0, 40))}…): the shell splits an unquoted invite there; put it in single quotes: p2ptls pair 'p2ptls://invite?…'`,
        err,
      );
    }
    throw err;
  }
}

/** `p2ptls pair <invite>`: pairs with the inviter and stores the pair. */
export async function pairCommand(
  ctx: CommandContext,
  inviteText: string,
  opts: { label?: string; timeout: string },
): Promise<void> {
  const timeoutMs = parseDuration(opts.timeout, '--timeout');
  // Checked before anything else: a bad invite must not need a server or an identity to be reported.
  const invite: Pick<Invite, 'peerId' | 'url'> = isPeerId(inviteText.trim())
    ? { peerId: inviteText.trim() as PeerId }
    : parseCliInvite(inviteText);
  const url = ctx.g.signalGiven ? ctx.g.signal : (invite.url ?? ctx.g.signal);
  const { store, identity } = await identityAndStore(ctx);
  if (invite.peerId === identity.peerId)
    throw fail('invalid_argument', 'this invite is your own: give it to the other side');
  const signaling = await connectSignaling(url, identity, ctx.scope);
  const pairing = new PairingService({ identity, transport: signaling, records: store });
  ctx.scope.defer(() => pairing.close());
  ctx.out.info(`asking ${invite.peerId} to pair…`);
  const result = await pairing.pair(inviteText.trim(), {
    timeoutMs,
    ...(opts.label ? { label: opts.label } : {}),
  });
  const record = await store.get(result.peer.peerId);
  if (result.pending) {
    ctx.out.info('already paired: the new key replaces the old one at the first connection that uses it');
  }
  ctx.out.result(
    { paired: result.peer.peerId, label: record?.label ?? null },
    `paired with ${result.peer.peerId}`,
  );
}

/** `p2ptls pairs`: lists the paired peers. */
export async function pairsListCommand(ctx: CommandContext): Promise<void> {
  const { store } = await identityAndStore(ctx);
  const { peers, problems } = await store.list();
  for (const p of problems) ctx.out.info(`skipped a damaged record ${p.key}: ${p.error.message}`);
  if (ctx.out.json) {
    ctx.out.result(
      peers.map((p) => ({
        peerId: p.peerId,
        label: p.label ?? null,
        trust: p.trust,
        addedAt: new Date(p.addedAt).toISOString(),
        lastSeenAt: p.lastSeenAt === undefined ? null : new Date(p.lastSeenAt).toISOString(),
      })),
    );
    return;
  }
  if (peers.length === 0) {
    ctx.out.info('no paired peers yet: `p2ptls invite` on one side, `p2ptls pair <invite>` on the other');
    return;
  }
  const rows = [
    ['PEER ID', 'LABEL', 'TRUST', 'ADDED', 'LAST SEEN'],
    ...peers.map((p) => [
      p.peerId,
      p.label ? p.label : '(none)',
      p.trust,
      minute(p.addedAt),
      p.lastSeenAt === undefined ? 'never' : minute(p.lastSeenAt),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) {
    process.stdout.write(
      `${r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}

/** `2026-11-30 03:51` (UTC), the precision a listing needs. */
const minute = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** `p2ptls pairs remove <peerId>`: forgets a pair (the other side keeps its copy until it removes it). */
export async function pairsRemoveCommand(ctx: CommandContext, peerIdText: string): Promise<void> {
  const { store } = await identityAndStore(ctx);
  const peerId = await resolvePeer(ctx, store, peerIdText);
  if (!(await store.delete(peerId))) throw fail('unknown_peer', `${peerId} is not paired with this identity`);
  ctx.out.result({ removed: peerId }, `removed ${peerId}`);
}

/** Identity, store, signaling and host, and a dial to a paired peer that is online. */
async function dial(
  ctx: CommandContext,
  peerIdText: string,
): Promise<{ host: Host; connection: Connection }> {
  const { store, identity } = await identityAndStore(ctx);
  const peerId = await resolvePeer(ctx, store, peerIdText);
  if (!(await store.lookup(peerId))) {
    throw fail('unknown_peer', `${peerId} is not paired with this identity (see \`p2ptls pairs\`)`);
  }
  const signaling = await connectSignaling(ctx.g.signal, identity, ctx.scope);
  const host = await startHost(ctx.g, identity, store, signaling, ctx.scope);
  const { online } = await signaling.lookup(peerId);
  if (!online) {
    throw fail(
      'peer_offline',
      `${peerId} is not connected to the signaling server at ${ctx.g.signal} (is \`p2ptls listen\` or \`p2ptls receive\` running there?)`,
    );
  }
  ctx.out.info(`connecting to ${short(peerId)}`);
  const connection = await host.connect(peerId);
  await store.markSeen(peerId).catch(() => {});
  return { host, connection };
}

/** `p2ptls connect <peerId>`: stdin → peer, peer → stdout. */
export async function connectCommand(ctx: CommandContext, peerIdText: string): Promise<void> {
  const { connection } = await dial(ctx, peerIdText);
  // Ctrl-C closes the connection from here: what the peer sees is this side hanging up.
  ctx.interrupt.add(() => `this side hung up: the stream to ${short(connection.peerId)} is closed`);
  const session = new CliSession(connection);
  await session.control({ t: 'stream' });
  await session.expect('ready');
  ctx.out.info(
    `connected to ${short(connection.peerId)}: stdin → peer, peer → stdout (Ctrl-D ends your input; the session ends once both sides have, or on Ctrl-C)`,
  );
  const r = await pipeSession(session, process.stdin, process.stdout);
  ctx.out.info(`stream ended${hangUpNote(r)}: sent ${r.sent} bytes, received ${r.received} bytes`);
}

/** Who ended a stream early, if anyone did. */
const hangUpNote = (r: StreamResult) =>
  r.peerHungUp ? ' (the peer hung up)' : r.weHungUp ? ' (this side hung up)' : '';

function transferJson(r: TransferResult, peerId: PeerId, event: 'sent' | 'received') {
  return {
    event,
    peerId,
    name: r.name,
    size: r.size,
    sha256: r.sha256,
    transferred: r.transferred,
    offset: r.offset,
    ms: Math.round(r.ms),
    mbPerSecond: Number(mbPerSecond(r.transferred, r.ms).toFixed(1)),
    ...(r.path ? { path: r.path } : {}),
  };
}

function transferLine(r: TransferResult, verb: string, peerId: PeerId): string {
  const resumed = r.offset > 0 ? `, resumed at byte ${r.offset}` : '';
  return `${verb} ${r.name} ${verb === 'sent' ? 'to' : 'from'} ${short(peerId)}: ${describeRate(r.transferred, r.ms)}${resumed}, SHA-256 ${r.sha256} verified`;
}

/** `p2ptls send <peerId> <file>`. */
export async function sendCommand(ctx: CommandContext, peerIdText: string, file: string): Promise<void> {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw fail('file_error', `cannot send ${file}: not a regular file`);
  } catch (err) {
    throw isP2PTLSError(err) ? err : fail('file_error', `cannot send ${file}: no such file`, err);
  }
  const { connection } = await dial(ctx, peerIdText);
  const session = new CliSession(connection);
  const size = (await stat(file)).size;
  const bar = progressBar(!ctx.out.json, 'sending', size);
  ctx.interrupt.add(() => {
    bar.stop();
    const got = bar.done > 0 ? ` after ${describeBytes(bar.done)} of ${describeBytes(size)}` : '';
    return `stopped sending ${file}${got}; run the same command again to resume: the receiver keeps what arrived`;
  });
  let r: TransferResult;
  try {
    r = await sendFile(session, file, bar);
  } finally {
    bar.stop();
  }
  await session.close('file sent');
  ctx.out.result(transferJson(r, connection.peerId, 'sent'), transferLine(r, 'sent', connection.peerId));
}

/** Codes of a transfer that stopped because the link or the sender went away: a resend resumes it. */
const CUT_OFF = new Set(['closed', 'truncated', 'timeout', 'peer_error', 'disconnected']);

/** A receive failure, saying that the part file is kept when a resend will resume from it. */
function resumable(err: unknown, name: string): unknown {
  if (!isP2PTLSError(err) || !CUT_OFF.has(err.code)) return err;
  return fail(
    err.code,
    `receiving ${name} stopped: ${err.message} (what arrived is kept; the same \`send\` resumes from there)`,
    err,
  );
}

/**
 * The progress bars of a listener's transfers in progress, so that stopping the listener ends them
 * before it says anything (a bar left drawn puts the shell's prompt on top of it).
 */
class ReceiveBars {
  private readonly active = new Map<Progress, string>();

  constructor(private readonly enabled: boolean) {}

  start(name: string, size: number, offset: number): Progress {
    const bar = progressBar(this.enabled, `receiving ${name}`, size, offset);
    this.active.set(bar, name);
    return {
      update: (done) => bar.update(done),
      stop: () => {
        this.active.delete(bar);
        bar.stop();
      },
      get done() {
        return bar.done;
      },
    };
  }

  /** Ends every bar; says which transfers were cut off (their senders' retries resume them). */
  interrupt(): string | undefined {
    const names = [...this.active.values()];
    for (const bar of this.active.keys()) bar.stop();
    this.active.clear();
    if (names.length === 0) return undefined;
    return `stopped receiving ${names.join(', ')}: what arrived is kept, and the same \`send\` resumes once a listener runs again`;
  }
}

/** Options of {@link serve}. */
interface ServeOptions {
  acceptPairing: boolean;
  invite: boolean;
  /** Accept streams (`listen`), or only files (`receive`). */
  streams: boolean;
  /** Where received files go; null refuses files. */
  filesDir: string | null;
  /** Stop after the first session (of a kind this command takes) and report its outcome. */
  once: boolean;
}

/** Makes sure `--out` is a directory, creating it (and its parents) when missing. */
async function outputDirectory(ctx: CommandContext, path: string): Promise<void> {
  const dir = resolve(path);
  const s = await stat(dir).catch(() => undefined);
  if (s?.isDirectory()) return;
  if (s) throw fail('file_error', `the output directory ${dir} is not a directory`);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw fail('file_error', `cannot create the output directory ${dir}: ${(err as Error).message}`, err);
  }
  ctx.out.info(`created the output directory ${dir}`);
}

async function serve(ctx: CommandContext, opts: ServeOptions): Promise<void> {
  const { out, g } = ctx;
  const { store, identity } = await identityAndStore(ctx);
  if (opts.filesDir) await outputDirectory(ctx, opts.filesDir);
  const signaling = await connectSignaling(g.signal, identity, ctx.scope);
  const host = await startHost(g, identity, store, signaling, ctx.scope);
  host.on('paired', ({ publicIdentity: { peerId } }) => {
    out.info(`paired with ${peerId}`);
    out.result({ event: 'paired', peerId });
  });
  // Uninvited requests are shown to this handler so that it can say why it declines them (the reject is
  // rate-limited per sender by the pairing service).
  host.onPairingRequest(
    ({ peer, invited }) => {
      if (invited || opts.acceptPairing) return true;
      out.info(
        `declined a pairing request from ${peer.peerId} (start with --accept-pairing or --invite to allow)`,
      );
      return false;
    },
    { uninvited: true },
  );
  if (opts.invite) {
    const invite = host.createInvite();
    out.info('invite for `p2ptls pair` on the other side (one use; keep the quotes when pasting):');
    out.result({ event: 'invite', invite }, quoted(invite));
  }
  out.info(
    `listening as ${identity.peerId} on ${signaling.url}${opts.filesDir ? `, files go to ${resolve(opts.filesDir)}` : ''}`,
  );
  out.result({ event: 'listening', peerId: identity.peerId, url: signaling.url });

  const receiving = new ReceiveBars(!out.json);
  ctx.interrupt.add(() => receiving.interrupt());
  let stdinTaken = false;
  let settle!: (err?: P2PTLSError) => void;
  const firstDone = new Promise<void>((res, rej) => {
    settle = (err) => (err ? rej(err) : res());
  });
  firstDone.catch(() => {});

  const handle = async (connection: Connection): Promise<boolean> => {
    const session = new CliSession(connection);
    const from = connection.peerId;
    const first = await session.expect('stream', 'offer');
    if (first.t === 'stream') {
      if (!opts.streams) {
        await session.refuse('transfer_refused', 'this peer receives files only (`p2ptls receive`)');
        await session.close('refused').catch(() => {}); // a refusal needs no acknowledgement
        out.info(`refused a stream from ${short(from)}: \`receive\` takes files only`);
        return false;
      }
      await session.control({ t: 'ready', offset: 0 });
      const input = stdinTaken ? null : process.stdin;
      stdinTaken = true;
      out.info(`stream from ${short(from)} opened`);
      const r = await pipeSession(session, input, process.stdout);
      out.info(
        `stream from ${short(from)} ended${hangUpNote(r)}: received ${r.received} bytes, sent ${r.sent} bytes${opts.once ? '' : '; still listening'}`,
      );
      return true;
    }
    if (!opts.filesDir) {
      await session.refuse(
        'transfer_refused',
        'this peer does not accept files (it must run `listen --out DIR` or `receive`)',
      );
      await session.close('refused').catch(() => {}); // a refusal needs no acknowledgement
      out.info(`refused ${first.name} from ${short(from)}: start \`listen\` with --out DIR to accept files`);
      return false;
    }
    const dir = opts.filesDir;
    // Checked here as well as inside receiveFile (which refuses it) so that the refusal does not count
    // as this command's session: with `--once` or `receive`, another peer's offer of the same name must
    // not end the process and cut off the transfer in progress.
    const busy = isBeingReceived(dir, first.name);
    let r: TransferResult;
    try {
      r = await receiveFile(session, first, dir, (name, size, offset) => receiving.start(name, size, offset));
    } catch (err) {
      if (!busy) throw resumable(err, first.name);
      out.info(`refused ${first.name} from ${short(from)}: a file of that name is being received`);
      await session.close('refused').catch(() => {}); // a refusal needs no acknowledgement
      return false;
    }
    out.result(transferJson(r, from, 'received'), transferLine(r, 'received', from));
    // The sender closes once it read `done`; closing here too would race its read.
    await Promise.race([connection.closed, new Promise((r) => setTimeout(r, 5_000))]);
    return true;
  };

  void (async () => {
    for await (const request of host.incoming()) {
      void (async () => {
        let connection: Connection;
        try {
          connection = await request.verify();
        } catch (err) {
          out.info(
            `refused a connection from ${request.peerId}: ${isP2PTLSError(err) ? err.message : String(err)}`,
          );
          return;
        }
        await store.markSeen(connection.peerId).catch(() => {});
        // A failed or interrupted session ends only that session: without --once the listener goes on,
        // so that the sender's retry (which resumes a file) finds it still there.
        try {
          if ((await handle(connection)) && opts.once) settle();
        } catch (err) {
          const e = isP2PTLSError(err) ? err : fail('closed', String(err), err);
          out.info(
            `session with ${short(connection.peerId)} failed: ${e.message}${opts.once ? '' : '; still listening'}`,
          );
          await connection.close(1000, e.code).catch(() => {});
          if (opts.once) settle(e);
        }
      })();
    }
  })();

  await Promise.race([opts.once ? firstDone : new Promise<never>(() => {}), ctx.stopped]);
}

/** `p2ptls listen`. */
export function listenCommand(
  ctx: CommandContext,
  opts: { acceptPairing?: boolean; invite?: boolean; out?: string; once?: boolean },
): Promise<void> {
  return serve(ctx, {
    acceptPairing: opts.acceptPairing ?? false,
    invite: opts.invite ?? false,
    streams: true,
    filesDir: opts.out ?? null,
    once: opts.once ?? false,
  });
}

/** `p2ptls receive`. */
export function receiveCommand(
  ctx: CommandContext,
  opts: { acceptPairing?: boolean; invite?: boolean; out: string; keep?: boolean },
): Promise<void> {
  return serve(ctx, {
    acceptPairing: opts.acceptPairing ?? false,
    invite: opts.invite ?? false,
    streams: false,
    filesDir: opts.out,
    once: !opts.keep,
  });
}

/** `p2ptls signal`: a signaling server until Ctrl-C. */
export async function signalCommand(
  ctx: CommandContext,
  opts: { port: string; host: string; logLevel: string },
): Promise<void> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw fail('invalid_argument', `--port ${opts.port} is not a port`);
  // Loaded here only: socket.io, pino and the Redis adapter would slow every other command's start.
  const { startSignalingServer } = await import('../../signaling-server/server.js');
  let server: Awaited<ReturnType<typeof startSignalingServer>>;
  try {
    server = await startSignalingServer({ port, host: opts.host, logLevel: opts.logLevel });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the port is in use'
        : code === 'EACCES'
          ? 'permission denied'
          : (err as Error).message;
    throw fail('unreachable', `cannot listen on ${opts.host}:${port}: ${why}`, err);
  }
  ctx.scope.defer(() => server.close());
  ctx.out.result({ event: 'listening', url: server.url }, `listening ${server.url}`);
  await ctx.stopped;
}
