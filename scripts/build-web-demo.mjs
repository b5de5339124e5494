// Bundles the web demo (web-demo/src/main.ts → web-demo/dist/app.js) and its Train page
// (web-demo/src/train/main.ts → web-demo/dist/train.js + train.css, TensorFlow.js and uPlot included) with the options of the published
// browser bundle (scripts/build-browser.mjs: simple-peer's `process`/`events` shims, Node-only modules
// refused). `npm start` runs it before serving web-demo/; the browser tests run it too.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { browserBuildOptions, nodeOnlyInputs } from './build-browser.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The web demo's static root (index.html, styles.css, dist/app.js). */
export const WEB_DEMO_DIR = join(root, 'web-demo');

/** Builds one bundle of the demo (minified, with a source map); returns its metafile. */
async function bundle(entry, name) {
  const result = await build({
    ...browserBuildOptions(),
    entryPoints: [join(WEB_DEMO_DIR, 'src', entry)],
    absWorkingDir: root,
    outfile: join(WEB_DEMO_DIR, 'dist', `${name}.js`),
    minify: true,
    sourcemap: true,
    metafile: true,
  });
  const forbidden = nodeOnlyInputs(result.metafile);
  if (forbidden.length > 0)
    throw new Error(`Node-only modules reached the web demo: ${forbidden.join(', ')}`);
  return result.metafile;
}

/** Builds web-demo/dist/app.js and the Train page's train.js; returns app.js's size in bytes. */
export async function buildWebDemo() {
  const [app] = await Promise.all([bundle('main.ts', 'app'), bundle('train/main.ts', 'train')]);
  // Chat and video users never download TensorFlow.js: only the Train page's bundle has it.
  const tfjs = Object.keys(app.inputs).filter((p) => p.includes('node_modules/@tensorflow/'));
  if (tfjs.length > 0) throw new Error(`TensorFlow.js reached web-demo/dist/app.js: ${tfjs[0]}`);
  return app.outputs['web-demo/dist/app.js']?.bytes ?? 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const bytes = await buildWebDemo();
  console.log(`web-demo/dist/app.js ${(bytes / 1024).toFixed(1)} KiB`);
}
