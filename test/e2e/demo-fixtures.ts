/**
 * Fixtures of the web-demo specs: the real `npm start` process (signaling server + web demo on a free
 * loopback port, one per worker), and helpers that drive the demo page as a user would.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext, test as base, expect, type Page } from '@playwright/test';
import { startDemoProcess } from '../helpers/processes.js';

export { expect };

export const test = base.extend<
  { newPeer: (name: string) => Promise<DemoPeer> },
  { demo: { origin: string } }
>({
  demo: [
    // biome-ignore lint/correctness/noEmptyPattern: Playwright reads a fixture's dependencies from this pattern.
    async ({}, use) => {
      const { origin, proc } = await startDemoProcess();
      await use({ origin });
      await proc.kill();
    },
    { scope: 'worker' },
  ],
  /** A peer in its own browser context (own IndexedDB): a second browser, as far as the demo can tell. */
  newPeer: async ({ browser, demo }, use) => {
    const contexts: BrowserContext[] = [];
    await use(async (name) => {
      const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (err) => console.error(`[${name} page error]`, err));
      const peer = new DemoPeer(name, page, demo.origin);
      await peer.open();
      return peer;
    });
    for (const c of contexts) await c.close();
  },
});

/** Where {@link DemoPeer.screenshot} writes: the test's output dir, or P2PTLS_SCREENSHOTS (docs). */
function screenshotDir(): string {
  const dir = process.env.P2PTLS_SCREENSHOTS ?? join('test-results', 'e2e', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** One browser tab running the demo, driven through its UI. */
export class DemoPeer {
  peerId = '';

  constructor(
    readonly name: string,
    readonly page: Page,
    readonly origin: string,
  ) {}

  /** Loads the demo (creating the identity on first visit) and reads the peerId it shows. */
  async open(path = '/'): Promise<void> {
    await this.page.goto(`${this.origin}${path}`);
    await expect(this.page.getByTestId('my-peer-id')).toHaveText(/^[a-z2-7]{52}$/, { timeout: 60_000 });
    this.peerId = (await this.page.getByTestId('my-peer-id').textContent()) ?? '';
  }

  async reload(): Promise<void> {
    await this.page.reload();
    await expect(this.page.getByTestId('my-peer-id')).toHaveText(/^[a-z2-7]{52}$/, { timeout: 60_000 });
  }

  async createInvite(): Promise<string> {
    await this.page.getByTestId('invite-create').click();
    const href = await this.page.getByTestId('invite-link').getAttribute('href');
    if (!href) throw new Error('no invite link');
    return href;
  }

  /** Opens an invite link and sends the pairing request. */
  async openInvite(link: string): Promise<void> {
    await this.page.goto(link);
    const dialog = this.page.getByTestId('invite-dialog');
    await expect(dialog).toBeVisible({ timeout: 60_000 });
    await dialog.getByRole('button', { name: 'Send pairing request' }).click();
  }

  /** Answers the pairing dialog that appears on this page. */
  async answerPairing(answer: 'Approve' | 'Reject'): Promise<void> {
    const dialog = this.page.getByTestId('pairing-dialog');
    await expect(dialog).toBeVisible();
    await dialog.getByRole('button', { name: answer }).click();
  }

  peerItem(peerId: string) {
    return this.page.locator(`[data-testid="peer-item"][data-peer="${peerId}"]`);
  }

  session(peerId: string) {
    return this.page.locator(`[data-testid="session"][data-peer="${peerId}"]`);
  }

  /** Selects a paired peer and presses Connect. */
  async connect(peerId: string): Promise<void> {
    await this.peerItem(peerId)
      .getByRole('button', { name: `Open ${peerId}` })
      .click();
    await this.session(peerId).getByTestId('connect').click();
  }

  async expectConnected(peerId: string): Promise<void> {
    await expect(this.session(peerId).getByTestId('conn-status')).toHaveText(/^connected/, {
      timeout: 60_000,
    });
  }

  async chat(peerId: string, text: string): Promise<void> {
    const session = this.session(peerId);
    await session.getByRole('textbox', { name: 'Message' }).fill(text);
    await session.getByTestId('chat-send').click();
  }

  /** An error (toast and event log) matching `text`. */
  async expectEvent(text: RegExp): Promise<void> {
    await expect(this.page.getByTestId('events').locator('li', { hasText: text }).first()).toBeVisible();
  }

  async screenshot(name: string): Promise<void> {
    await this.page.screenshot({ path: join(screenshotDir(), `${name}.png`), fullPage: true });
  }
}
