/**
 * The web demo's Train page (web-demo/train.html), a bundle of its own so that TensorFlow.js never loads
 * for chat and video users. It opens the same profile as the main page (`?profile=`: identity and paired
 * peers in IndexedDB), joins the mesh room `?room=` (default "train") and trains with the paired peers
 * there: members with their status and step times, a live loss and accuracy chart, bytes on the wire,
 * the compression switch, and what happened when a member left.
 *
 * URL parameters: profile, room, members (to wait for, default 2), target (loss, default 0.3),
 * steps (at most, default 2000).
 */
import * as tf from '@tensorflow/tfjs';
import {
  joinMesh,
  type Mesh,
  openIndexedDbPeerStore,
  SignalingClient,
  startBrowserHost,
} from '../../../src/browser.js';
import type { Compression, StepReport } from '../../../src/train/index.js';
import { DemoConfigSchema } from '../config.js';
import { $, formatBytes, h, notify, short } from '../ui.js';
import { LossChart } from './chart.js';
import { TrainingRun } from './session.js';
import './train.css';

const params = new URLSearchParams(location.search);
const profile = (params.get('profile') ?? 'default').replace(/[^a-zA-Z0-9_-]/g, '').slice(0, 32) || 'default';
const room = (params.get('room') ?? 'train').replace(/[^A-Za-z0-9_.:@/+=-]/g, '').slice(0, 100) || 'train';
const number = (name: string, fallback: number) => {
  const v = Number(params.get(name) ?? Number.NaN);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const wanted = Math.floor(number('members', 2));
const lossTarget = number('target', 0.3);
const maxSteps = Math.floor(number('steps', 2000));

interface MemberRow {
  status: 'online' | 'left';
  stepMs?: number;
  note: string;
  row: HTMLTableRowElement;
}

const rows = new Map<string, MemberRow>();
let lastMembers: string[] = [];
let lastCompression: Compression | undefined;
/** Bytes to and from each member, kept after it leaves (the mesh only lists current members). */
const traffic = new Map<string, { sent: number; received: number }>();

function logEvent(text: string, kind: 'info' | 'ok' | 'error' = 'info'): void {
  const list = $('#events');
  list.prepend(h('li', { class: kind }, h('time', {}, new Date().toLocaleTimeString()), ' ', text));
  while (list.children.length > 100) list.lastElementChild?.remove();
}

function memberRow(peerId: string, me: string): MemberRow {
  let r = rows.get(peerId);
  if (!r) {
    const row = h('tr', { 'data-testid': 'member', 'data-peer': peerId }) as HTMLTableRowElement;
    r = { status: 'online', note: '', row };
    rows.set(peerId, r);
    $('#members').append(row);
    if (peerId === me) r.note = ' (you)';
  }
  return r;
}

function render(r: MemberRow, peerId: string): void {
  r.row.replaceChildren(
    h('td', {}, h('code', { title: peerId }, short(peerId)), r.note),
    h('td', { class: r.status, 'data-testid': 'member-status' }, r.status),
    h('td', { 'data-testid': 'member-step-ms' }, r.stepMs === undefined ? '–' : `${r.stepMs.toFixed(0)} ms`),
  );
}

function onStep(mesh: Mesh, chart: LossChart, report: StepReport, smoothed: number): void {
  chart.add(report.step, report.loss, report.metric);
  $('#compression-used').textContent = report.compression === 'none' ? 'off' : report.compression;
  if (lastCompression !== undefined && report.compression !== lastCompression) {
    logEvent(`from step ${report.step} the group's gradients travel as ${report.compression}`);
  }
  lastCompression = report.compression;
  const lost = report.members.filter((p) => !report.averaged.includes(p));
  if (lost.length > 0) {
    logEvent(
      `step ${report.step}: ${lost.map(short).join(', ')} was lost mid-exchange; the mean is over the ` +
        `${report.averaged.length} members whose gradients arrived`,
      'error',
    );
  }
  for (const [peerId, ms] of Object.entries(report.memberStepMs)) {
    const r = memberRow(peerId, mesh.peerId);
    if (ms > 0) r.stepMs = ms;
    render(r, peerId);
  }
  const gone = lastMembers.filter((p) => !report.members.includes(p));
  for (const p of gone) {
    const r = memberRow(p, mesh.peerId);
    r.note = ` (gone from step ${report.step})`;
    render(r, p);
  }
  if (gone.length > 0) {
    logEvent(
      `step ${report.step} ran over ${report.members.length} members without ${gone.map(short).join(', ')}` +
        (report.attempts > 1 ? ` (the step was retried: ${report.attempts} tries)` : ''),
      'error',
    );
  }
  if (report.synced.length > 0 && report.step > 0) {
    logEvent(
      `step ${report.step}: ${report.synced.map(short).join(', ')} received the parameters from ${short(report.root)}`,
    );
  }
  lastMembers = report.members;
  $('#status').textContent =
    `Training: step ${report.step}, loss ${report.loss.toFixed(4)} (last 10: ${smoothed.toFixed(4)}), ` +
    `accuracy ${(report.metric * 100).toFixed(1)} %, ${report.members.length} members, ${report.ms.total.toFixed(0)} ms per step`;
  $('#status').dataset.step = String(report.step);
}

async function boot(): Promise<void> {
  $('#profile').textContent = profile === 'default' ? '' : `profile: ${profile}`;
  $('#back').setAttribute('href', profile === 'default' ? '/' : `/?profile=${profile}`);
  $('#room').textContent = room;
  const stage = $('#boot-stage');
  // Same lock as the main page: one tab per identity (the signaling server keeps one connection per peer).
  const claimed = await new Promise<boolean>((resolve) => {
    if (!navigator.locks) return resolve(true);
    void navigator.locks.request(`p2ptls-demo:${profile}`, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock ? new Promise<never>(() => {}) : undefined;
    });
  });
  if (!claimed) {
    stage.textContent = 'This profile is open in another tab: close it, or use ?profile=… for another peer.';
    return;
  }
  stage.textContent = 'Loading TensorFlow.js…';
  // The CPU backend: the same arithmetic as Node members, so every member holds the same bits.
  await tf.setBackend('cpu');
  stage.textContent = 'Opening your peer store…';
  const store = await openIndexedDbPeerStore({ name: `p2ptls-demo-${profile}` });
  const identity = await store.getIdentity();
  if (!identity) {
    stage.textContent =
      'No identity yet: open the demo page first and pair with the peers you want to train with.';
    return;
  }
  const signaling = new SignalingClient({ url: location.origin, identity });
  const setOnline = (online: boolean) => {
    const badge = $('#signaling-state');
    badge.textContent = `signaling: ${online ? 'online' : 'offline'}`;
    badge.className = `badge ${online ? 'online' : 'offline'}`;
  };
  signaling.on('authenticated', () => setOnline(true));
  signaling.on('disconnected', () => setOnline(false));
  const config = DemoConfigSchema.safeParse(
    await fetch('/dist/config.json').then(
      (r) => r.json(),
      () => ({}),
    ),
  );
  const host = await startBrowserHost({
    identity,
    peers: store,
    signaling,
    iceServers: config.success ? config.data.iceServers : [],
  });
  setOnline(true);
  stage.textContent = `Joining room ${room}…`;
  const mesh = await joinMesh(host, room);
  $('#boot').hidden = true;
  $('#app').hidden = false;

  for (const p of mesh.ring) render(memberRow(p, mesh.peerId), p);
  mesh.on('joined', ({ peerId }) => {
    const r = memberRow(peerId, mesh.peerId);
    r.status = 'online';
    render(r, peerId);
    logEvent(`${short(peerId)} joined the room`, 'ok');
  });
  mesh.on('left', ({ peerId }) => {
    const r = memberRow(peerId, mesh.peerId);
    r.status = 'left';
    render(r, peerId);
    logEvent(`${short(peerId)} left the room: the running step finishes over the others`, 'error');
  });

  const chart = new LossChart($('#chart'));
  const run = new TrainingRun(mesh, {
    state(state, detail) {
      $('#status').textContent = detail;
      $('#status').dataset.state = state;
      ($('#start') as HTMLButtonElement).disabled = state === 'waiting' || state === 'training';
      ($('#stop') as HTMLButtonElement).disabled = !(state === 'waiting' || state === 'training');
      // notify() records it in the event log too.
      if (state === 'done') notify(detail, 'ok');
      else if (state === 'failed') notify(detail, 'error');
      else if (state !== 'waiting') logEvent(detail);
    },
    step: (report, smoothed) => onStep(mesh, chart, report, smoothed),
  });
  const select = $('#compression') as HTMLSelectElement;
  select.addEventListener('change', () => {
    run.setCompression(select.value as Compression);
    logEvent(`asked the group for compression: ${select.value}`);
  });
  $('#start').addEventListener('click', () => {
    void run.run({ members: wanted, lossTarget, maxSteps, compression: select.value as Compression });
  });
  $('#stop').addEventListener('click', () => run.stop());

  // Bytes on the wire: the mesh's own counters, summed over every member's link.
  setInterval(() => {
    void mesh.stats().then((stats) => {
      for (const s of stats) traffic.set(s.peerId, { sent: s.bytesSent, received: s.bytesReceived });
      const all = [...traffic.values()];
      $('#bytes-sent').textContent = formatBytes(all.reduce((a, t) => a + t.sent, 0));
      $('#bytes-received').textContent = formatBytes(all.reduce((a, t) => a + t.received, 0));
    });
  }, 1000);
}

boot().catch((err: unknown) => {
  $('#boot-stage').textContent = `Could not start: ${err instanceof Error ? err.message : String(err)}`;
});
