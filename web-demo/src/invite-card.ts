// The "Invite a peer" card: the latest invite's link and QR code, and what became of it. The link stays
// on the card after someone used it (the user may still want to see what was shared) until a new invite
// replaces it or it expires; the status line says which.
import QRCode from 'qrcode';
import { h, notify, short } from './ui.js';

/** How long an invite from the demo is valid (the host's default, stated on the card). */
export const INVITE_TTL_MS = 24 * 60 * 60 * 1000;

type InviteState =
  | { kind: 'none' }
  | { kind: 'open'; expires: number }
  | { kind: 'used'; expires: number; by: string; answer: 'pending' | 'approved' | 'rejected' }
  | { kind: 'expired'; by?: string };

export class InviteCard {
  private state: InviteState = { kind: 'none' };
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly status = h('p', { class: 'invite-status', 'data-testid': 'invite-status' });
  private readonly body = h('div');

  constructor(private readonly root: HTMLElement) {
    root.replaceChildren(this.body, this.status);
    this.render();
  }

  /** Shows a new invite (replacing the previous one). */
  async show(invite: string): Promise<void> {
    const link = `${location.origin}/?invite=${encodeURIComponent(invite)}`;
    const canvas = h('canvas', { 'aria-label': 'Invite QR code', 'data-testid': 'invite-qr' });
    await QRCode.toCanvas(canvas, link, { margin: 1, width: 200 });
    const copy = h('button', {}, 'Copy link');
    copy.addEventListener('click', () => {
      void navigator.clipboard?.writeText(link).then(
        () => notify('Invite link copied', 'ok'),
        () => notify('Copy failed; select the link instead', 'error'),
      );
    });
    this.body.replaceChildren(
      h(
        'p',
        { class: 'hint' },
        'Open this link on the other device or in another browser. It works once, for 24 hours.',
      ),
      h(
        'a',
        { href: link, class: 'invite-link', 'data-testid': 'invite-link', target: '_blank', rel: 'noopener' },
        link,
      ),
      h('div', { class: 'row' }, copy),
      canvas,
    );
    const expires = Date.now() + INVITE_TTL_MS;
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => this.expire(), INVITE_TTL_MS);
    this.state = { kind: 'open', expires };
    this.render();
  }

  /**
   * A pairing request carried one of our invite tokens: the invite shown here is spent. (The host does not
   * say which of our invites a request used; the card holds the latest, which is the one in use unless an
   * earlier link was shared too.)
   */
  used(by: string): void {
    if (this.state.kind !== 'open' && this.state.kind !== 'used') return;
    this.state = { kind: 'used', expires: this.state.expires, by, answer: 'pending' };
    this.render();
  }

  /** The user answered the request that used the invite. */
  answered(by: string, approved: boolean): void {
    if (this.state.kind !== 'used' || this.state.by !== by) return;
    this.state = { ...this.state, answer: approved ? 'approved' : 'rejected' };
    this.render();
  }

  private expire(): void {
    this.state = { kind: 'expired', ...(this.state.kind === 'used' ? { by: this.state.by } : {}) };
    this.body.replaceChildren();
    this.render();
  }

  private render(): void {
    const s = this.state;
    this.root.dataset.state = s.kind;
    this.status.hidden = s.kind === 'none';
    const until = (expires: number) =>
      new Date(expires).toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });
    switch (s.kind) {
      case 'none':
        this.status.textContent = '';
        return;
      case 'open':
        this.status.className = 'invite-status';
        this.status.textContent = `Not used yet; valid until ${until(s.expires)}.`;
        return;
      case 'used': {
        const answer = {
          pending: 'waiting for your answer',
          approved: 'you approved it',
          rejected: 'you rejected it',
        }[s.answer];
        this.status.className = `invite-status used ${s.answer}`;
        this.status.textContent = `Used by ${short(s.by)} (${answer}). It cannot be used again: create a new invite for another peer.`;
        return;
      }
      case 'expired':
        this.status.className = 'invite-status expired';
        this.status.textContent = s.by
          ? `The invite ${short(s.by)} used has expired. Create a new one for another peer.`
          : 'This invite expired unused. Create a new one.';
        return;
    }
  }
}
