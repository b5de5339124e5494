// Bundles the web demo (web-demo/src/main.ts → web-demo/dist/app.js) with the options of the published
// browser bundle (scripts/build-browser.mjs: simple-peer's `process`/`events` shims, Node-only modules
// refused). `npm start` runs it before serving web-demo/; the browser tests run it too.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { browserBuildOptions, nodeOnlyInputs } from './build-browser.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The web demo's static root (index.html, styles.css, dist/app.js). */
export const WEB_DEMO_DIR = join(root, 'web-demo');

/** Builds web-demo/dist/app.js (minified, with a source map); returns its size in bytes. */
export async function buildWebDemo() {
  const outfile = join(WEB_DEMO_DIR, 'dist', 'app.js');
  const result = await build({
    ...browserBuildOptions(),
    entryPoints: [join(WEB_DEMO_DIR, 'src', 'main.ts')],
    absWorkingDir: root,
    outfile,
    minify: true,
    sourcemap: true,
    metafile: true,
  });
  const forbidden = nodeOnlyInputs(result.metafile);
  if (forbidden.length > 0)
    throw new Error(`Node-only modules reached the web demo: ${forbidden.join(', ')}`);
  return result.metafile.outputs[`web-demo/dist/app.js`]?.bytes ?? 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const bytes = await buildWebDemo();
  console.log(`web-demo/dist/app.js ${(bytes / 1024).toFixed(1)} KiB`);
}
