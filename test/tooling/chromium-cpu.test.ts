// bench/chromium-cpu.ts, which bench:browser reads to tell whether its throughput ratio was bound by CPU:
// a page's own work must show as its renderer's main thread, in the Chromium this process launched.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright';
import { chromiumCpu, chromiumCpuSince } from '../../bench/chromium-cpu.js';
import { launchChromium, type StaticServer, serveFiles } from '../helpers/browser.js';

describe('bench/chromium-cpu: Chromium CPU time by role', () => {
  let browser: Browser;
  let site: StaticServer;
  before(async () => {
    site = await serveFiles({ '/index.html': { type: 'text/html; charset=utf-8', body: '<p>cpu</p>' } });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await site?.close();
  });

  it("counts a page's busy loop as its renderer's main thread, and the machine's idle share in 0–1", async () => {
    const page = await browser.newPage();
    await page.goto(`${site.origin}/`);
    const before = chromiumCpu();
    assert.ok(before, 'Linux has /proc/stat and per-thread schedstat');
    // A fixed amount of work, not a fixed time: its CPU time does not shrink when the machine is busy.
    const sum = await page.evaluate(() => {
      let x = 0;
      for (let i = 0; i < 200_000_000; i++) x = (x + i * 7) % 1_000_003;
      return x;
    });
    assert.equal(typeof sum, 'number');
    const spent = chromiumCpuSince(before);
    assert.ok(spent);
    // 2·10⁸ iterations took 0.9–1.35 s of CPU here. Meanwhile a second renderer, which no page of this test
    // uses (Chromium keeps one ready for the next page), ran 0.4–0.6 s on its main and pool threads
    // together (`/proc/<pid>/task/<tid>/comm`), and the network service 1–6 ms.
    const { pagesMain, pagesOther, network } = spent.chromium;
    assert.ok(pagesMain >= 300, `renderers' main threads: ${pagesMain} ms`);
    assert.ok(
      pagesMain > pagesOther && pagesMain > network,
      `main ${pagesMain} ms, the renderers' other threads ${pagesOther} ms, network ${network} ms`,
    );
    for (const v of Object.values(spent.chromium)) assert.ok(v >= 0);
    assert.ok(spent.idle >= 0 && spent.idle <= 1, `idle ${spent.idle}`);
    await page.close();
  });
});
