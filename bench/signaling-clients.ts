/**
 * What the signaling benchmarks (bench/signaling.ts, bench/signaling-attacks.ts) share: their server
 * processes and clients, and their identities.
 *
 * Identities for the signaling benchmarks (bench/signaling.ts, bench/signaling-attacks.ts), cached in
 * .tmp/bench-identities.jsonl and grown on demand.
 *
 * Each is a valid p2ptls identity (RSA-2048 signing key, its own binding signature) that the server
 * checks like any other, but they are made the cheap way: RSA key generation spends nearly all its time
 * searching for two 1024-bit primes (~150–300 ms per key here, so 10,000 keys took ~28 min), while k
 * primes give k·(k−1)/2 moduli. 143 primes (~12 s in the libuv pool) make 10,000 keys, each built from
 * its (p, q) in well under a millisecond, plus one binding signature. Keys that share a prime factor one
 * another's modulus, which is fatal for real keys and harmless for load clients: the server only
 * verifies signatures. All bench identities also share ONE RSA-OAEP key, which the server never uses.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  generatePrime,
  type KeyObject,
  constants as nodeCrypto,
  sign as nodeSign,
} from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { PublicIdentity, type PublicIdentityJson, peerIdOf } from '../src/identity/index.js';
import { authSignedBytes, signalingOrigin } from '../src/signaling/wire.js';
import { concat, fromBase64Url, toBase64Url, utf8 } from '../src/util/bytes.js';
import { rsaKeyFromPrimes } from '../test/helpers/rsa-keys.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const IDENTITY_CACHE = join(ROOT, '.tmp', 'bench-identities.jsonl');
const genKeyPair = promisify(generateKeyPair);
const genPrime = (bits: number) =>
  new Promise<bigint>((resolve, reject) =>
    generatePrime(bits, { bigint: true }, (err, prime) => (err ? reject(err) : resolve(prime))),
  );

// Same string as the private BINDING_CONTEXT of src/identity/identity.ts. If they ever differ,
// PublicIdentity.import below rejects the first generated identity loudly.
const BINDING_CONTEXT = utf8('p2ptls/1 encryption key binding\0');
const E = 65537n;

export interface BenchIdentity {
  peerId: string;
  pub: PublicIdentityJson;
  key: KeyObject;
}

interface CachedLine {
  pub: PublicIdentityJson;
  pkcs8: string;
}

/** RSA-PSS (SHA-256, salt 32) in the libuv pool, as a p2ptls identity signs. */
export function pssSign(key: KeyObject, data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    nodeSign(
      'sha256',
      data,
      { key, padding: nodeCrypto.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
      (err, sig) => (err ? reject(err) : resolve(new Uint8Array(sig))),
    ),
  );
}

/** How many identities the cache holds. */
export function cachedIdentities(): number {
  return existsSync(IDENTITY_CACHE) ? readCache().length : 0;
}

function readCache(): CachedLine[] {
  return readFileSync(IDENTITY_CACHE, 'utf8')
    .split('\n')
    .flatMap((l) => {
      // A run interrupted mid-write leaves a partial last line: skip it.
      try {
        return [JSON.parse(l) as CachedLine];
      } catch {
        return [];
      }
    });
}

/** The RSA-2048 private key with primes p and q, or null when they do not make one. */
function rsaFromPrimes(p: bigint, q: bigint): KeyObject | null {
  if ((p * q).toString(2).length !== 2048) return null;
  return rsaKeyFromPrimes(p, q, E) ?? null;
}

/** Loads `n` cached identities, generating (from a pool of primes) and appending the missing ones. */
export async function loadIdentities(n: number): Promise<BenchIdentity[]> {
  mkdirSync(dirname(IDENTITY_CACHE), { recursive: true });
  const lines = existsSync(IDENTITY_CACHE) ? readCache() : [];
  if (lines.length < n) {
    const missing = n - lines.length;
    const t0 = performance.now();
    let k = 2;
    while ((k * (k - 1)) / 2 < missing * 1.05 + 4) k++;
    console.error(
      `generating ${missing} RSA-2048 identities from ${k} primes (cached in ${IDENTITY_CACHE}) ...`,
    );
    // The shared OAEP key: taken from the cache when there is one, so every line agrees.
    let encSpki: Uint8Array;
    if (lines.length > 0) encSpki = fromBase64Url(lines[0]!.pub.encryptionKey);
    else {
      const enc = await genKeyPair('rsa', { modulusLength: 2048, publicExponent: 65537 });
      encSpki = new Uint8Array(enc.publicKey.export({ type: 'spki', format: 'der' }));
    }
    const primes = await Promise.all(Array.from({ length: k }, () => genPrime(1024)));
    const pairs: [number, number][] = [];
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) pairs.push([i, j]);
    let next = 0;
    let made = 0;
    const worker = async () => {
      while (made < missing && next < pairs.length) {
        const [i, j] = pairs[next++]!;
        const key = rsaFromPrimes(primes[i]!, primes[j]!);
        if (!key) continue;
        made++;
        const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
        const binding = await pssSign(key, concat(BINDING_CONTEXT, encSpki));
        const pub: PublicIdentityJson = {
          v: 1,
          peerId: await peerIdOf(spki),
          signingKey: toBase64Url(spki),
          encryptionKey: toBase64Url(encSpki),
          binding: toBase64Url(binding),
        };
        const pkcs8 = toBase64Url(new Uint8Array(key.export({ type: 'pkcs8', format: 'der' })));
        if (lines.length === 0) await PublicIdentity.import(pub); // the binding format check, once
        const line: CachedLine = { pub, pkcs8 };
        lines.push(line);
        appendFileSync(IDENTITY_CACHE, `${JSON.stringify(line)}\n`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    if (made < missing) throw new Error(`only ${made} of ${missing} prime pairs made RSA-2048 keys`);
    console.error(`  generated ${missing} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return lines.slice(0, n).map((l) => ({
    peerId: l.pub.peerId,
    pub: l.pub,
    key: createPrivateKey({ key: Buffer.from(fromBase64Url(l.pkcs8)), format: 'der', type: 'pkcs8' }),
  }));
}

export interface BenchServer {
  url: string;
  child: ChildProcess;
  /** Collects the server's garbage, then reads its memory (bench/memory-probe.ts). */
  memory(): Promise<{ rss: number; heap: number }>;
}

export function spawnServer(args: string[]): Promise<BenchServer> {
  // BENCH_CPU_PROF=DIR: each server writes a V8 CPU profile there when it exits (open in Chrome DevTools).
  const prof = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
    : [];
  const probe = ['--expose-gc', '--import', './bench/memory-probe.ts'];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', ...probe, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const readings: ((line: string) => void)[] = [];
  const memory = () =>
    new Promise<{ rss: number; heap: number }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('server did not report its memory')), 60_000);
      readings.push((line) => {
        clearTimeout(t);
        resolve(JSON.parse(line) as { rss: number; heap: number });
      });
      child.kill('SIGUSR2');
    });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('server did not start')), 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        const listening = line.match(/^listening (http:\/\/\S+)$/);
        if (listening) {
          clearTimeout(timer);
          resolve({ url: listening[1]!, child, memory });
        } else if (line.startsWith('memory ')) readings.shift()?.(line.slice('memory '.length));
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export function waitFor<T>(socket: Socket, event: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event}`)), 60_000);
    socket.once(event, (v: T) => {
      clearTimeout(t);
      resolve(v);
    });
    socket.once('connect_error', (err: Error) => {
      clearTimeout(t);
      reject(err);
    });
  });
}

export async function connectOurs(url: string, id: BenchIdentity, localAddress?: string): Promise<Socket> {
  // engine.io-client hands `localAddress` to the `ws` package in Node; its types only omit it.
  const options = { transports: ['websocket'], reconnection: false, forceNew: true, localAddress };
  const socket = io(url, options as Parameters<typeof io>[1]);
  const challenge = await waitFor<{ nonce: string }>(socket, 'challenge');
  const origin = signalingOrigin(url);
  const sig = await pssSign(id.key, authSignedBytes(id.peerId, fromBase64Url(challenge.nonce), origin));
  const ack = (await socket.timeout(60_000).emitWithAck('auth', {
    identity: id.pub,
    origin,
    sig: toBase64Url(sig),
  })) as { ok: boolean; error?: unknown };
  if (!ack.ok) throw new Error(`auth failed: ${JSON.stringify(ack.error)}`);
  return socket;
}
