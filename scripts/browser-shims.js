// Injected into the browser bundle by scripts/build-browser.mjs (esbuild `inject`): the one Node global
// that simple-peer's dependencies reach for without importing it. readable-stream calls
// `process.nextTick(fn, ...args)` throughout and reads `process.env`; debug reads `process.env.DEBUG`.
// `global` is mapped to `globalThis` by `define`, and `Buffer` comes from the `buffer` package that
// simple-peer imports explicitly, so neither needs a shim here.

/** The subset of Node's `process` used by readable-stream and debug. */
export const process = {
  browser: true,
  env: {},
  argv: [],
  version: '',
  versions: {},
  /** Node runs nextTick callbacks before promise jobs; a microtask is the closest browser equivalent. */
  nextTick(fn, ...args) {
    queueMicrotask(() => fn(...args));
  },
  emitWarning() {},
};
