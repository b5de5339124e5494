// `npm run build:browser`: bundles src/browser.ts into dist/browser/p2ptls.js (ESM, minified, with a
// source map) for <script type="module"> or any bundler-free page, then prints its size.
//
// simple-peer is a Node-style package. In the browser it needs exactly two things Node provides:
//   - the `events` module (readable-stream requires it): aliased to scripts/browser-events.js;
//   - the `process` global (readable-stream's process.nextTick / process.env): injected from
//     scripts/browser-shims.js; `global` is defined as `globalThis`.
// `Buffer` is not shimmed: simple-peer and its dependencies import it from the `buffer` package.
// zod's locales index (every language, ~250 KiB minified) is replaced by English only: scripts/zod-locales-en.js.
// The build fails if a Node-only module (src/runtime/*, classic-level, node:*) reaches the bundle.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Resolves zod's `../locales/index.js` to the English-only stand-in. */
const englishOnlyZod = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${join('node_modules', 'zod')}`)
        ? { path: join(root, 'scripts', 'zod-locales-en.js') }
        : undefined,
    );
  },
};

/** esbuild options shared by the published bundle and the browser tests (test/helpers/browser.ts). */
export function browserBuildOptions() {
  return {
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    define: { global: 'globalThis' },
    inject: [join(root, 'scripts', 'browser-shims.js')],
    alias: { events: join(root, 'scripts', 'browser-events.js') },
    plugins: [englishOnlyZod],
    logLevel: 'warning',
  };
}

/** Inputs of a bundle that must never be there: code that only runs on Node. */
export function nodeOnlyInputs(metafile) {
  return Object.keys(metafile.inputs).filter(
    (p) => p.startsWith('src/runtime/') || p.includes('node_modules/classic-level/') || p.startsWith('node:'),
  );
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

async function main() {
  const outfile = join(root, 'dist', 'browser', 'p2ptls.js');
  mkdirSync(dirname(outfile), { recursive: true });
  const common = {
    ...browserBuildOptions(),
    entryPoints: [join(root, 'src', 'browser.ts')],
    absWorkingDir: root,
  };
  const [result, raw] = await Promise.all([
    build({ ...common, outfile, minify: true, sourcemap: true, metafile: true }),
    build({ ...common, write: false, metafile: true }),
  ]);
  const forbidden = [...nodeOnlyInputs(result.metafile), ...nodeOnlyInputs(raw.metafile)];
  if (forbidden.length > 0) {
    console.error(`Node-only modules reached the browser bundle:\n  ${[...new Set(forbidden)].join('\n  ')}`);
    process.exit(1);
  }
  const minified = readFileSync(outfile);
  const rawSize = raw.outputFiles[0]?.contents.byteLength ?? 0;
  console.log(`${relative(root, outfile)} (+ .map)`);
  console.log(`  raw (unminified): ${kib(rawSize)}`);
  console.log(`  minified:         ${kib(minified.byteLength)}`);
  console.log(`  minified + gzip:  ${kib(gzipSync(minified, { level: 9 }).byteLength)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
