// Small DOM helpers: the demo has no framework, so it keeps node creation, toasts and dialogs in one place.
import { isP2PTLSError } from '../../src/errors.js';

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | EventListener | undefined>;

/** Creates an element: `h('button', { class: 'primary', onclick: go }, 'Connect')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function $(selector: string): HTMLElement {
  const el = document.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`missing ${selector}`);
  return el;
}

/** The first 8 characters of a peerId, enough for people to tell peers apart on one screen. */
export const short = (peerId: string) => `${peerId.slice(0, 8)}…`;

const FRIENDLY: Record<string, string> = {
  bad_binder: 'the peer does not hold the pre-shared key of this pair (wrong key)',
  bad_signature: 'the peer could not prove its identity key (wrong key)',
  bad_finished: 'the handshake was tampered with',
  channel_binding_mismatch: 'the WebRTC session was swapped in transit (man in the middle?)',
  peer_id_mismatch: 'the peer presented a different identity',
  unknown_peer: 'not a paired peer',
  bad_record_mac: 'tampered data detected; the connection was closed',
  peer_offline: 'the peer is offline',
  pairing_rejected: 'the other side rejected the pairing request',
  pairing_expired: 'the invite has expired',
  bad_invite: 'this is not a valid invite link',
  timeout: 'no answer in time',
  replaced: 'this identity was opened in another tab',
  store_locked: 'another tab holds the database; close it and reload',
};

/** A P2PTLSError in plain words, with its stable code for reference. */
export function explain(err: unknown): string {
  if (isP2PTLSError(err)) {
    const friendly = FRIENDLY[err.code];
    return friendly ? `${friendly} (${err.code})` : `${err.message} (${err.code})`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Shows a toast for a few seconds and records it in the event log. */
export function notify(message: string, kind: 'info' | 'ok' | 'error' = 'info'): void {
  const toast = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  $('#toasts').append(toast);
  setTimeout(() => toast.remove(), kind === 'error' ? 9000 : 4000);
  const time = new Date().toLocaleTimeString();
  $('#events').prepend(h('li', { class: kind }, h('time', {}, time), ' ', message));
}

/** A modal dialog with buttons; resolves with the chosen button's value (or `dismiss` on Escape). */
export function ask<T extends string>(
  title: string,
  body: Node | string,
  buttons: { label: string; value: T; kind?: string }[],
  options: { testId: string; dismiss: T },
): Promise<T> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'modal', 'data-testid': options.testId });
    const done = (value: T) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      h('h2', {}, title),
      h('div', { class: 'modal-body' }, body),
      h(
        'div',
        { class: 'modal-actions' },
        ...buttons.map((b) => h('button', { class: b.kind ?? '', onclick: () => done(b.value) }, b.label)),
      ),
    );
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(options.dismiss);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export const formatRate = (bytesPerSecond: number) => `${formatBytes(Math.round(bytesPerSecond))}/s`;
