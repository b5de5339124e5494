// Every spec fails on a console error or an uncaught exception on any demo page (demo-fixtures.ts). This
// checks that watch itself, and that a plain page load of the demo logs nothing (it once logged a 404
// for /favicon.ico).
import { expect, test, watchConsole } from './demo-fixtures.js';

test('a page load logs no error, and the console watch of every spec does catch errors', async ({
  newPeer,
  browser,
  demo,
}) => {
  const alice = await newPeer('alice');
  const icon = await alice.page.locator('link[rel="icon"]').getAttribute('href');
  expect(icon).toBeTruthy();
  expect((await alice.page.request.get(new URL(icon ?? '', demo.origin).href)).status()).toBe(200);

  const context = await browser.newContext();
  const errors: string[] = [];
  watchConsole(context, 'probe', errors);
  const page = await context.newPage();
  await page.goto(`${demo.origin}/styles.css`);
  await page.evaluate(() => {
    console.error('a deliberate console error');
    setTimeout(() => {
      throw new Error('a deliberate uncaught exception');
    });
    void fetch('/no-such-file.png');
  });
  await expect.poll(() => errors.length).toBe(3);
  expect(errors.join('\n')).toContain('a deliberate console error');
  expect(errors.join('\n')).toContain('a deliberate uncaught exception');
  expect(errors.join('\n')).toMatch(/404/);
  await context.close();
});
