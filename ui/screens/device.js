// Device status (#/device, technicians/admins): version, hall, key files, drop folders, disk,
// services, settings. The item shapes inside GET /device are not fixed yet, so every part is
// rendered defensively (known fields first, anything else as key=value).

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage, getLang } from '../i18n.js';
import { table, kvTable, badge, loading, errorBox, section } from '../widgets.js';
import { meter } from '../charts.js';
import { formatBytes, formatDetail } from '../format.js';

const OK_STATES = new Set(['ok', 'running', 'active', 'present', 'healthy', 'true']);

function stateBadge(value) {
  const text = String(value);
  const kind = OK_STATES.has(text.toLowerCase()) ? 'ok' : ['missing', 'down', 'failed', 'error', 'false', 'invalid', 'permissions'].includes(text.toLowerCase()) ? 'bad' : 'warn';
  return badge(tOr(`state.${text.toLowerCase()}`, text), kind);
}

const pick = (obj, ...names) => names.map((n) => obj && obj[n]).find((v) => v !== undefined && v !== null && v !== '');
const localMessage = (o) => (getLang() === 'en' ? pick(o, 'message_en', 'message', 'detail') : pick(o, 'message_zh', 'message', 'detail'));

/** {a: {b: 1}} -> {'a.b': 1} for the settings table. */
export function flatten(obj, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out); else out[key] = v;
  }
  return out;
}

export function mount(container) {
  const body = h('div', { class: 'device-grid' });
  container.appendChild(h('div', { class: 'device' },
    h('div', { class: 'toolbar' }, h('h1', { class: 'screen-title', text: t('nav.device') }),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: t('common.refresh'), onClick: () => load() })),
    body));

  async function load() {
    replace(body, loading());
    try {
      render(await api('/device', { quiet: true }));
    } catch (err) {
      if (err.status !== 401) replace(body, errorBox(serverMessage(err.detail), load));
    }
  }

  function render(d) {
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(location.hostname);
    const insecure = !loopback && (d.tls === false || location.protocol === 'http:');
    replace(body,
      insecure ? h('p', { class: 'notice notice-bad', text: t('device.noTls') }) : null,
      section(t('device.overview'), table([
        { label: t('device.key'), cell: (r) => r.k },
        { label: t('device.value'), cell: (r) => r.v, className: 'mono wrap' },
      ], [
        { k: t('device.version'), v: String(d.version ?? '—') },
        { k: t('device.hallId'), v: String(d.hall_id ?? '—') },
        { k: t('device.hallName'), v: String(d.hall_name ?? '—') },
      ])),
      section(t('device.keys'), keysTable(d.keys)),
      section(t('device.dropFolders'), foldersTable(d.drop_folders)),
      section(t('device.disk'), disk(d.disk)),
      section(t('device.services'), services(d.services)),
      d.settings ? h('details', { class: 'panel' }, h('summary', { class: 'panel-title', text: t('device.settings') }), kvTable(flatten(d.settings))) : null);
  }

  /** The key's name in the UI language (the server sends a stable `kind`, and for hall keys the id). */
  function keyLabel(k) {
    const raw = String(pick(k, 'name', 'file', 'id') ?? '—');
    if (!k.kind) return raw;
    const label = t(`device.key.${k.kind}`);
    return k.kind === 'kek' ? `${label} ${raw.replace(/^hall key\s*/, '')}` : label;
  }

  function keysTable(keys) {
    const rows = Array.isArray(keys) ? keys : Object.entries(keys || {}).map(([name, v]) => (typeof v === 'object' ? { name, ...v } : { name, status: v }));
    return table([
      { label: t('device.keyName'), cell: (k) => keyLabel(k) },
      { label: t('device.path'), cell: (k) => String(pick(k, 'path', 'file') ?? ''), className: 'mono wrap small' },
      { label: t('device.mode'), cell: (k) => String(k.mode ?? (k.present === false ? '—' : '')), className: 'mono' },
      { label: t('device.status'), cell: (k) => stateBadge(pick(k, 'status', 'state') ?? (k.ok === undefined ? '—' : k.ok ? 'ok' : k.present === false ? 'missing' : 'error')) },
      { label: t('device.detail'), cell: (k) => String(pick(k, 'problem') ?? localMessage(k) ?? ''), className: 'wrap small' },
    ], rows);
  }

  function foldersTable(folders) {
    const rows = Array.isArray(folders) ? folders : [];
    return table([
      { label: t('device.counter'), cell: (f) => String(pick(f, 'counter', 'name') ?? '—') },
      { label: t('device.path'), cell: (f) => String(pick(f, 'path', 'dir') ?? ''), className: 'mono wrap small' },
      { label: t('device.status'), cell: (f) => stateBadge(pick(f, 'status', 'state') ?? (f.ok === undefined && f.exists === undefined ? '—' : (f.ok ?? f.exists) ? 'ok' : 'missing')) },
      { label: t('device.watch'), cell: (f) => (f.polling === undefined ? '' : f.polling ? t('device.polling') : t('device.events')) },
    ], rows);
  }

  function disk(dk) {
    if (!dk || typeof dk !== 'object') return h('p', { class: 'muted', text: t('dash.noData') });
    const one = (v, label) => (typeof v.total === 'number'
      ? meter({ value: typeof v.free === 'number' ? v.total - v.free : v.used, max: v.total, label: `${label ? `${label}: ` : ''}${t('dash.diskUse', { used: formatBytes(v.used ?? v.total - v.free), total: formatBytes(v.total), free: formatBytes(v.free) })}` })
      : h('p', { class: 'mono small', text: `${label}: ${formatDetail(v)}` }));
    if (typeof dk.total === 'number') return one(dk, dk.path || '');
    return h('div', null, Object.entries(dk).map(([name, v]) => (v && typeof v === 'object' ? one(v, name) : h('p', { class: 'mono small', text: `${name}: ${v}` }))));
  }

  function services(sv) {
    const rows = Array.isArray(sv) ? sv : Object.entries(sv || {}).map(([name, v]) => (v && typeof v === 'object' ? { name, ...v } : { name, state: v }));
    return table([
      { label: t('device.service'), cell: (s) => String(s.name ?? '—'), className: 'mono' },
      { label: t('device.status'), cell: (s) => stateBadge(pick(s, 'state', 'status') ?? (s.ok === undefined ? overall(s) : s.ok ? 'ok' : 'down')) },
      { label: t('device.detail'), cell: (s) => String(localMessage(s) ?? formatDetail(Object.fromEntries(Object.entries(s).filter(([k]) => !['name', 'state', 'status', 'ok'].includes(k))))), className: 'wrap small' },
    ], rows);
  }

  // A service made of parts ({"w0": "running", "w1": "stopped"}): the first part not OK, else OK.
  function overall(s) {
    const parts = Object.entries(s).filter(([k, v]) => k !== 'name' && typeof v === 'string').map(([, v]) => v);
    if (!parts.length) return '—';
    return parts.find((v) => !OK_STATES.has(v.toLowerCase())) || parts[0];
  }

  load();
  return {};
}
