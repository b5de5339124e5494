/**
 * Fixtures of the web-demo specs: the real `npm start` process (signaling server + web demo on a free
 * loopback port, one per worker), and helpers that drive the demo page as a user would. Every page of
 * every peer is watched: a console error or an uncaught exception on any of them fails the test, since a
 * user with the developer tools open would see it too.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext, test as base, expect, type Page } from '@playwright/test';
import { startDemoProcess } from '../helpers/processes.js';

export { expect };

/** A peerId as the demo shortens it. */
export const short = (peerId: string) => `${peerId.slice(0, 8)}…`;

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
    const errors: string[] = [];
    await use(async (name) => {
      const context = await browser.newContext({ permissions: ['camera', 'microphone'] });
      contexts.push(context);
      watchConsole(context, name, errors);
      const page = await context.newPage();
      const peer = new DemoPeer(name, page, demo.origin);
      await peer.open();
      return peer;
    });
    // Checked before the contexts close: what a closing page logs is not the user's concern.
    const seen = [...errors];
    for (const c of contexts) await c.close();
    expect(seen, 'console errors or uncaught exceptions on the demo pages').toEqual([]);
  },
});

/**
 * Collects into `errors` every console error (a failed request such as a 404 included) and every uncaught
 * exception of every page of `context`, tabs opened later included.
 */
export function watchConsole(context: BrowserContext, name: string, errors: string[]): void {
  context.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${name}: console error: ${m.text()} (${m.location().url})`);
  });
  context.on('weberror', (e) => errors.push(`${name}: uncaught: ${e.error().stack ?? e.error()}`));
}

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

  /** An entry of the Events list (time, then message) matching `text`. */
  async expectEvent(text: RegExp): Promise<void> {
    await expect(this.page.getByTestId('events').locator('li', { hasText: text }).first()).toBeVisible();
  }

  async screenshot(name: string): Promise<void> {
    await this.page.screenshot({ path: join(screenshotDir(), `${name}.png`), fullPage: true });
  }
}
