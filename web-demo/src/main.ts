/**
 * The p2ptls web demo: an identity kept in IndexedDB, invites (link + QR), pairing with approval, and per
 * peer a chat and file transfer over TCP mode and webcam video over SLLP mode, all end-to-end encrypted
 * between browsers (or a browser and a Node worker) over WebRTC data channels.
 *
 * `?profile=<name>` keeps a separate identity and peer list per name, so two tabs of one browser can be
 * two peers.
 */
import {
  type Host,
  type IndexedDbPeerStore,
  openIndexedDbPeerStore,
  type PairingRequestInfo,
  type PeerRecord,
  SignalingClient,
  startBrowserHost,
} from '../../src/browser.js';
import { DemoConfigSchema } from './config.js';
import { INVITE_TTL_MS, InviteCard } from './invite-card.js';
import { PeerSession } from './peer-session.js';
import { $, ask, explain, h, notify, short } from './ui.js';

const params = new URLSearchParams(location.search);
const profile = (params.get('profile') ?? 'default').replace(/[^a-zA-Z0-9_-]/g, '').slice(0, 32) || 'default';
const AUTOCONNECT_KEY = `p2ptls-demo:${profile}:autoconnect`;
const PRESENCE_INTERVAL_MS = 3000;

interface PeerView {
  record: PeerRecord;
  online: boolean;
  session?: PeerSession;
  item: HTMLElement;
}

let host: Host;
let store: IndexedDbPeerStore;
let signaling: SignalingClient;
let inviteCard: InviteCard;
const peers = new Map<string, PeerView>();
let selected: string | undefined;

function autoconnect(): Set<string> {
  try {
    const list: unknown = JSON.parse(localStorage.getItem(AUTOCONNECT_KEY) ?? '[]');
    return new Set(Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

function setAutoconnect(peerId: string, on: boolean): void {
  const set = autoconnect();
  if (on) set.add(peerId);
  else set.delete(peerId);
  localStorage.setItem(AUTOCONNECT_KEY, JSON.stringify([...set]));
}

/**
 * One tab per profile: a second tab with the same identity would take over its signaling connection
 * (the server keeps one per peerId). A Web Lock held for the tab's lifetime tells the tabs apart.
 */
async function claimProfile(): Promise<boolean> {
  if (!navigator.locks) return true;
  return new Promise<boolean>((resolve) => {
    void navigator.locks.request(`p2ptls-demo:${profile}`, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      // Held until the tab closes.
      return lock ? new Promise<never>(() => {}) : undefined;
    });
  });
}

/** Offers to open this page (invite included) as another peer, with a profile of its own. */
function offerAnotherProfile(): void {
  const next = new URL(location.href);
  next.searchParams.set('profile', `peer-${crypto.getRandomValues(new Uint32Array(1))[0]?.toString(36)}`);
  $('#boot-stage').textContent =
    profile === 'default'
      ? 'This browser already runs your peer in another tab.'
      : `Profile "${profile}" is already open in another tab.`;
  $('#boot').append(
    h(
      'p',
      { class: 'hint' },
      'Each tab needs its own identity to be a separate peer (for example, to accept your own invite).',
    ),
    h(
      'a',
      { class: 'button primary', href: next.href, 'data-testid': 'another-profile' },
      'Open as another peer',
    ),
  );
}

async function boot(): Promise<void> {
  $('#profile').textContent = profile === 'default' ? '' : `profile: ${profile}`;
  if (!(await claimProfile())) {
    offerAnotherProfile();
    return;
  }
  const stage = $('#boot-stage');
  stage.textContent = 'Opening your peer store (IndexedDB)…';
  store = await openIndexedDbPeerStore({ name: `p2ptls-demo-${profile}` });
  let identity = await store.getIdentity();
  if (!identity) {
    const started = performance.now();
    const bar = $('#boot-progress');
    bar.hidden = false;
    const tick = setInterval(() => {
      stage.textContent = `Creating your identity: generating RSA-2048 keys… ${((performance.now() - started) / 1000).toFixed(1)} s`;
    }, 100);
    try {
      identity = await store.loadOrCreateIdentity();
    } finally {
      clearInterval(tick);
    }
    notify(`Created a new identity in ${((performance.now() - started) / 1000).toFixed(1)} s`, 'ok');
  }
  stage.textContent = 'Connecting to the signaling server…';
  setSignalingState('connecting');
  signaling = new SignalingClient({ url: location.origin, identity });
  signaling.on('authenticated', () => setSignalingState('online'));
  signaling.on('disconnected', () => setSignalingState('offline'));
  signaling.on('replaced', () => {
    setSignalingState('offline');
    notify(
      'This identity was opened in another tab; this tab stopped. Use ?profile=… for a second peer.',
      'error',
    );
  });
  signaling.on('rejected', ({ error }) => notify(`Dropped a relayed message: ${explain(error)}`, 'error'));
  host = await startBrowserHost({ identity, peers: store, signaling, iceServers: await loadIceServers() });
  // Both sides of a pairing get this event, whoever used the invite.
  host.on('paired', ({ publicIdentity }) => {
    notify(`Paired with ${short(publicIdentity.peerId)}`, 'ok');
    void refreshPeers().then(refreshPresence);
  });
  // The page asks about every request (the dialog says when it carries none of our invites).
  host.onPairingRequest(approvePairing, { uninvited: true });
  setSignalingState('online');

  $('#my-peer-id').textContent = identity.peerId;
  $('#store-state').textContent = `IndexedDB, encrypted at rest${store.persisted ? ', persistent' : ''}`;
  inviteCard = new InviteCard($('#invite'));
  $('#invite-create').addEventListener(
    'click',
    () => void inviteCard.show(host.createInvite({ url: location.origin, ttlMs: INVITE_TTL_MS })),
  );
  $('#boot').hidden = true;
  $('#app').hidden = false;

  void acceptIncoming();
  await refreshPeers();
  for (const peerId of autoconnect()) if (peers.has(peerId)) void connect(peerId);
  setInterval(() => void refreshPresence(), PRESENCE_INTERVAL_MS);
  void refreshPresence();

  const invite = params.get('invite');
  if (invite) {
    history.replaceState(null, '', profile === 'default' ? '/' : `/?profile=${profile}`);
    if (inviteIsOurs(invite, identity.peerId)) {
      notify(
        'This is your own invite: open it in another browser, or in a tab with another profile.',
        'error',
      );
    } else {
      await pairWith(invite);
    }
  }
}

/** ICE servers from `npm start`'s config.json; none (host candidates only) when it is absent or bad. */
async function loadIceServers(): Promise<RTCIceServer[]> {
  try {
    const response = await fetch('/dist/config.json', { cache: 'no-store' });
    if (!response.ok) return [];
    return DemoConfigSchema.parse(await response.json()).iceServers;
  } catch (err) {
    notify(`Ignoring the demo's config.json: ${explain(err)}`, 'error');
    return [];
  }
}

function setSignalingState(state: 'connecting' | 'online' | 'offline'): void {
  const el = $('#signaling-state');
  el.hidden = false;
  el.className = `badge ${state}`;
  el.textContent = {
    connecting: 'signaling: connecting…',
    online: 'signaling: connected',
    offline: 'signaling: offline',
  }[state];
}

async function approvePairing(request: PairingRequestInfo): Promise<boolean> {
  const peerId = request.peer.peerId;
  if (request.invited) inviteCard.used(peerId);
  const body = h(
    'div',
    {},
    h('p', {}, 'This peer asks to pair with you:'),
    h('code', { class: 'peer-id' }, peerId),
    request.invited
      ? h('p', { class: 'ok' }, '✓ It used one of your invite links.')
      : h(
          'p',
          { class: 'warn' },
          '⚠ It did not use one of your invite links. Approve only if you expected it.',
        ),
    h(
      'p',
      { class: 'hint' },
      'Approving lets it open encrypted connections to you; you can remove it later.',
    ),
  );
  const answer = await ask(
    'Pairing request',
    body,
    [
      { label: 'Reject', value: 'reject', kind: 'danger' },
      { label: 'Approve', value: 'approve', kind: 'primary' },
    ],
    { testId: 'pairing-dialog', dismiss: 'reject' },
  );
  if (request.invited) inviteCard.answered(peerId, answer === 'approve');
  // An approval is logged by the `paired` event, as on the requesting side.
  if (answer === 'reject') notify(`Rejected the pairing request from ${short(peerId)}`);
  return answer === 'approve';
}

/** The peerId an invite names (the invite itself when it is not one: pair() explains why). */
function invitePeer(invite: string): string {
  try {
    return new URL(invite).searchParams.get('peer') ?? invite;
  } catch {
    return invite;
  }
}

const inviteIsOurs = (invite: string, peerId: string) => invitePeer(invite) === peerId;

async function pairWith(invite: string): Promise<void> {
  const target = invitePeer(invite);
  const go = await ask(
    'Pair with this peer?',
    h(
      'div',
      {},
      h('p', {}, 'You opened an invite from:'),
      h('code', { class: 'peer-id' }, target),
      h('p', { class: 'hint' }, 'They will be asked to approve.'),
    ),
    [
      { label: 'Cancel', value: 'cancel' },
      { label: 'Send pairing request', value: 'pair', kind: 'primary' },
    ],
    { testId: 'invite-dialog', dismiss: 'cancel' },
  );
  if (go !== 'pair') return;
  const banner = $('#pairing-state');
  banner.hidden = false;
  banner.className = 'banner';
  banner.textContent = 'Waiting for the other side to approve…';
  try {
    const result = await host.pair(invite, { timeoutMs: 120_000 });
    banner.className = 'banner ok';
    banner.textContent = `Paired with ${short(result.publicIdentity.peerId)}`;
  } catch (err) {
    banner.className = 'banner error';
    banner.setAttribute('role', 'alert');
    banner.textContent = `Pairing failed: ${explain(err)}`;
    notify(`Pairing with ${short(target)} failed: ${explain(err)}`, 'error');
  }
}

async function refreshPeers(): Promise<void> {
  const { peers: records, problems } = await store.list();
  for (const p of problems)
    notify(`A stored entry could not be read and was skipped: ${explain(p.error)}`, 'error');
  const list = $('#peers');
  const seen = new Set<string>();
  for (const record of records) {
    if (record.trust !== 'paired') continue;
    seen.add(record.peerId);
    let view = peers.get(record.peerId);
    if (!view) {
      view = { record, online: false, item: h('li') };
      peers.set(record.peerId, view);
    }
    view.record = record;
    renderPeer(view);
    list.append(view.item);
  }
  for (const [peerId, view] of peers) {
    if (seen.has(peerId)) continue;
    view.item.remove();
    view.session?.panel.remove();
    peers.delete(peerId);
  }
  $('#peers-empty').hidden = peers.size > 0;
}

function renderPeer(view: PeerView): void {
  const { peerId } = view.record;
  const status = view.session?.status ?? 'idle';
  const state =
    status === 'connected'
      ? 'connected'
      : status === 'connecting' || status === 'reconnecting'
        ? status
        : view.online
          ? 'online'
          : 'offline';
  view.item.className = `peer ${state}${selected === peerId ? ' selected' : ''}`;
  view.item.dataset.peer = peerId;
  view.item.dataset.testid = 'peer-item';
  view.item.replaceChildren(
    h(
      'button',
      { class: 'peer-open', onclick: () => select(peerId), 'aria-label': `Open ${peerId}` },
      h('span', { class: `dot ${view.online || status === 'connected' ? 'on' : 'off'}` }),
      h('span', { class: 'peer-name' }, view.record.label ?? short(peerId)),
      h('span', { class: 'peer-state', 'data-testid': 'peer-state' }, state),
    ),
    h(
      'button',
      {
        class: 'icon danger',
        title: 'Remove this peer',
        'aria-label': 'Remove peer',
        onclick: () => void removePeer(peerId),
      },
      '✕',
    ),
  );
}

function sessionFor(peerId: string): PeerSession {
  const view = peers.get(peerId);
  if (!view) throw new Error(`${peerId} is not paired`);
  if (!view.session) {
    view.session = new PeerSession(peerId, {
      connect: () => connect(peerId),
      disconnect: () => disconnect(peerId),
      changed: () => renderPeer(view),
    });
    view.session.panel.hidden = selected !== peerId;
    $('#sessions').append(view.session.panel);
  }
  return view.session;
}

function select(peerId: string): void {
  selected = peerId;
  for (const [id, view] of peers) {
    if (view.session) view.session.panel.hidden = id !== peerId;
    renderPeer(view);
  }
  sessionFor(peerId).panel.hidden = false;
  $('#no-session').hidden = true;
}

async function connect(peerId: string): Promise<void> {
  const session = sessionFor(peerId);
  if (!selected) select(peerId);
  session.connecting();
  setAutoconnect(peerId, true);
  try {
    session.keep(await host.keepConnected(peerId));
  } catch (err) {
    setAutoconnect(peerId, false);
    await session.close(explain(err));
    notify(`Could not connect to ${short(peerId)}: ${explain(err)}`, 'error');
  }
}

async function disconnect(peerId: string): Promise<void> {
  setAutoconnect(peerId, false);
  await peers.get(peerId)?.session?.close('closed by you');
}

async function removePeer(peerId: string): Promise<void> {
  const answer = await ask(
    'Remove this peer?',
    h(
      'div',
      {},
      h('code', { class: 'peer-id' }, peerId),
      h('p', {}, 'Its key and the pair secret are deleted; pairing again needs a new invite.'),
    ),
    [
      { label: 'Cancel', value: 'cancel' },
      { label: 'Remove', value: 'remove', kind: 'danger' },
    ],
    { testId: 'remove-dialog', dismiss: 'cancel' },
  );
  if (answer !== 'remove') return;
  await disconnect(peerId);
  await store.delete(peerId);
  if (selected === peerId) {
    selected = undefined;
    $('#no-session').hidden = false;
  }
  await refreshPeers();
}

/** Accepts connections from paired peers; anyone else (or a wrong key) is refused and shown. */
async function acceptIncoming(): Promise<void> {
  // Dials from peers that are not paired are refused by the host before they cost anything.
  host.on('refused', ({ peerId, error }) =>
    notify(`Refused a connection from ${short(peerId)}: ${explain(error)}`, 'error'),
  );
  for await (const request of host.incoming()) {
    const peerId = request.peerId;
    request.verify().then(
      (conn) => {
        const session = sessionFor(peerId);
        session.attach(conn);
        if (!selected) select(peerId);
      },
      (err: unknown) => notify(`Refused a connection from ${short(peerId)}: ${explain(err)}`, 'error'),
    );
  }
}

async function refreshPresence(): Promise<void> {
  await Promise.all(
    [...peers.values()].map(async (view) => {
      try {
        view.online = (await signaling.lookup(view.record.peerId)).online;
      } catch {
        view.online = false;
      }
      renderPeer(view);
    }),
  );
}

boot().catch((err: unknown) => {
  $('#boot-stage').textContent = `Could not start: ${explain(err)}`;
  $('#boot-stage').classList.add('error');
  $('#boot-progress').hidden = true;
});
