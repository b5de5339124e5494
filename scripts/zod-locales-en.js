// Stand-in for zod's locales index in the browser bundle: p2ptls only ever uses zod's default English
// messages, and the index re-exports every language (about 250 KiB minified) through `z.locales`.
export { default as en } from '../node_modules/zod/v4/locales/en.js';
