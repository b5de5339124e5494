// Playwright Test runs the web-demo end-to-end specs (test/e2e/*.spec.ts) in Debian's Chromium with fake
// camera and microphone. `npm test` runs it inside the same loopback-only network namespace as the Node
// tests; `npx playwright test` works on its own too.
import { execFileSync } from 'node:child_process';
import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, LOOPBACK_WEBRTC_ARGS } from './test/helpers/browser.js';

/** Debian's Chromium (scripts/test.mjs apt-installs it when missing). */
function chromium(): string {
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed: run `npm test` once, or `apt-get install chromium`');
  }
}

export default defineConfig({
  testDir: 'test/e2e',
  testMatch: '*.spec.ts',
  outputDir: 'test-results/e2e',
  // Two cores: browsers, WebRTC and RSA key generation compete; one spec file at a time.
  workers: 1,
  timeout: 180_000,
  expect: { timeout: 30_000 },
  reporter: [['list']],
  use: {
    permissions: ['camera', 'microphone'],
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: chromium(),
      args: [
        ...CHROMIUM_ARGS,
        ...LOOPBACK_WEBRTC_ARGS,
        '--host-resolver-rules=MAP localhost 127.0.0.1',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
      ],
    },
  },
});
