// Shared plumbing for tests that run code in a real Chromium: bundle a TypeScript entry with esbuild,
// serve it from a loopback-only HTTP server (http://localhost is a secure context, so WebCrypto,
// IndexedDB persistence and getUserMedia work), and drive Debian's Chromium through playwright-core.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { type BuildOptions, build, type Metafile } from 'esbuild';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Flags that keep headless Chromium quiet, offline (except loopback) and runnable as root. */
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

/**
 * Flags for WebRTC between Chromium and a peer on the same machine over loopback only:
 * - `--allow-loopback-in-peer-connection`: Chromium leaves the loopback interface out of ICE gathering
 *   unless told otherwise, so 127.0.0.1 / ::1 candidates exist only with this switch;
 * - `--disable-features=WebRtcHideLocalIpsWithMdns`: without it, host candidates may carry a random
 *   `….local` mDNS name instead of the address, which a loopback-only candidate filter (rightly) drops.
 * Chromium still offers loopback (a "non-default" address) only to a page granted camera/microphone
 * permission: pass `permissions: ['camera', 'microphone']` to {@link startBrowserHarness} as well (with
 * the grant, Chromium also stops hiding addresses behind mDNS). Chromium also gathers every other
 * interface it sees: run such tests in a network namespace with only `lo` (see test/e2e).
 */
export const LOOPBACK_WEBRTC_ARGS = [
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
] as const;

/** Path of the system Chromium, apt-installed by scripts/ensure-deps.mjs when missing. */
export async function chromiumPath(): Promise<string> {
  // ensure-deps.mjs is plain JS without type declarations; import it by a computed path and type it here.
  const mod = (await import(new URL('../../scripts/ensure-deps.mjs', import.meta.url).href)) as {
    ensureApt(binary: string, pkg: string): string;
  };
  return mod.ensureApt('chromium', 'chromium');
}

/** Launches headless Chromium with {@link CHROMIUM_ARGS} plus `extraArgs`. */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: await chromiumPath(),
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/** What scripts/build-browser.mjs exports (plain JS; typed here). */
interface BrowserBuildModule {
  /** esbuild options of the published browser bundle: platform, target, the `process`/`events` shims. */
  browserBuildOptions(): BuildOptions;
  /** Inputs of a bundle that only run on Node (src/runtime/*, classic-level, node:*). */
  nodeOnlyInputs(metafile: Metafile): string[];
}

/** scripts/build-browser.mjs, imported by a computed path (it has no type declarations). */
export async function browserBuild(): Promise<BrowserBuildModule> {
  return (await import(
    new URL('../../scripts/build-browser.mjs', import.meta.url).href
  )) as BrowserBuildModule;
}

/**
 * Bundles a TypeScript/JS entry file (path relative to the working directory) for the browser with the
 * options of the published bundle (scripts/build-browser.mjs, so simple-peer gets its `process` and
 * `events` shims); returns the JS.
 */
export async function bundleForBrowser(entry: string): Promise<string> {
  const out = await build({
    ...(await browserBuild()).browserBuildOptions(),
    entryPoints: [resolve(entry)],
    write: false,
    sourcemap: 'inline',
    logLevel: 'silent',
  });
  const file = out.outputFiles[0];
  if (!file) throw new Error(`esbuild produced no output for ${entry}`);
  return file.text;
}

/** A file served by {@link serveFiles}: its body and Content-Type. */
export interface ServedFile {
  readonly body: string | Uint8Array;
  readonly type: string;
}

/** A running loopback HTTP server. */
export interface StaticServer {
  /** `http://localhost:<port>` (a secure context), bound to 127.0.0.1 only. */
  readonly origin: string;
  close(): Promise<void>;
}

/** Serves fixed files (keys are paths such as `/index.html`) on 127.0.0.1 at a random port. */
export async function serveFiles(files: Readonly<Record<string, ServedFile>>): Promise<StaticServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = files[path === '/' ? '/index.html' : path];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://localhost:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/** A browser with one context whose pages load a bundled test entry. */
export interface BrowserHarness {
  readonly browser: Browser;
  /** One profile: pages opened with {@link BrowserHarness.newPage} share IndexedDB and storage. */
  readonly context: BrowserContext;
  readonly origin: string;
  /** Opens a new tab on the test page and waits until the entry module has run. */
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Bundles `entry`, serves it at `<origin>/` (an HTML page loading `/bundle.js` as a module) and launches
 * Chromium. The entry should set `globalThis.__ready = true` when it has finished loading.
 */
export async function startBrowserHarness(options: {
  entry: string;
  chromiumArgs?: readonly string[];
  /** Permissions granted to the page's origin (e.g. `['camera', 'microphone']`, see {@link LOOPBACK_WEBRTC_ARGS}). */
  permissions?: readonly string[];
}): Promise<BrowserHarness> {
  const js = await bundleForBrowser(options.entry);
  const server = await serveFiles({
    '/index.html': {
      type: 'text/html; charset=utf-8',
      body: '<!doctype html><meta charset="utf-8"><title>p2ptls test</title><script type="module" src="/bundle.js"></script>',
    },
    '/bundle.js': { type: 'text/javascript; charset=utf-8', body: js },
  });
  let browser: Browser | undefined;
  try {
    // Map localhost to IPv4 loopback explicitly: the server listens on 127.0.0.1 only.
    browser = await launchChromium([
      '--host-resolver-rules=MAP localhost 127.0.0.1',
      ...(options.chromiumArgs ?? []),
    ]);
    const context = await browser.newContext(
      options.permissions ? { permissions: [...options.permissions] } : {},
    );
    const b = browser;
    return {
      browser: b,
      context,
      origin: server.origin,
      async newPage() {
        const page = await context.newPage();
        page.on('pageerror', (err) => console.error('[browser page error]', err));
        await page.goto(`${server.origin}/`);
        await page.waitForFunction(() => (globalThis as { __ready?: boolean }).__ready === true);
        return page;
      },
      async close() {
        await b.close();
        await server.close();
      },
    };
  } catch (err) {
    await browser?.close();
    await server.close();
    throw err;
  }
}

type Method<T> = T extends (...args: infer A) => infer R ? (...args: A) => R : never;

/**
 * A typed caller for an API a test page puts on `globalThis[name]`:
 * `const call = pageApi<StoreTestApi>('storeTest'); await call(page, 'open', 'db1', pass)`.
 */
export function pageApi<Api>(name: string) {
  return <K extends keyof Api & string>(
    page: Page,
    method: K,
    ...args: Parameters<Method<Api[K]>>
  ): Promise<Awaited<ReturnType<Method<Api[K]>>>> =>
    page.evaluate(
      ({ name, method, args }) => {
        const api = (globalThis as unknown as Record<string, Record<string, (...a: unknown[]) => unknown>>)[
          name
        ]!;
        return api[method]!(...args);
      },
      { name, method, args: args as unknown[] },
    ) as Promise<Awaited<ReturnType<Method<Api[K]>>>>;
}
