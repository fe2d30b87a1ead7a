// Audit log (#/audit, supervisors/admins): entries newest first, 50 a page (older pages by
// ?before=<seq of the last entry>), filter by action, and the chain verification.

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage } from '../i18n.js';
import { table, badge, loading, errorBox } from '../widgets.js';
import { formatDateTime, formatDetail } from '../format.js';

const PAGE = 50;
export const KNOWN_ACTIONS = [
  'auth.login', 'auth.logout', 'auth.login_failed', 'record.view', 'page.view', 'master.view', 'preview.view', 'records.list',
  'metadata.edit', 'record.confirm', 'record.store', 'record.shred', 'record.export', 'search',
  'quarantine.download', 'quarantine.decide', 'audit.verify', 'keys.rotate', 'index.rebuild',
  'retention.report', 'users.create', 'users.role', 'users.disable', 'users.enable', 'users.password',
  'tokens.create', 'tokens.revoke', 'device.configure', 'quarantine', 'ingest',
];

export function mount(container) {
  const action = h('input', { type: 'text', list: 'audit-actions', maxlength: 40, placeholder: t('audit.actionHint'), 'aria-label': t('audit.action') });
  const actions = h('datalist', { id: 'audit-actions' }, KNOWN_ACTIONS.map((a) => h('option', { value: a, label: tOr(`action.${a}`, a) })));
  const verifyBtn = h('button', { type: 'button', class: 'btn', text: t('audit.verify') });
  const verifyOut = h('div', { class: 'verify-result', 'aria-live': 'polite' });
  const list = h('div', { class: 'audit-list' });
  const newer = h('button', { type: 'button', class: 'btn btn-small', text: `← ${t('common.newer')}` });
  const older = h('button', { type: 'button', class: 'btn btn-small', text: `${t('common.older')} →` });
  const pageInfo = h('span', { class: 'muted small' });
  const filterForm = h('form', { class: 'inline-form' },
    h('label', { class: 'inline-field' }, h('span', { text: t('audit.action') }), action), actions,
    h('button', { type: 'submit', class: 'btn btn-small', text: t('audit.filter') }));
  container.appendChild(h('div', { class: 'audit' },
    h('div', { class: 'toolbar' }, h('h1', { class: 'screen-title', text: t('nav.audit') }), filterForm, verifyBtn),
    verifyOut, list,
    h('div', { class: 'pager' }, newer, pageInfo, older)));

  // `stack` holds the `before` value of every page shown so far (undefined = the newest page).
  let stack = [undefined];
  let items = [];

  async function load() {
    const before = stack[stack.length - 1];
    replace(list, loading());
    try {
      const data = await api('/audit', { query: { limit: PAGE, before, action: action.value.trim() }, quiet: true });
      items = Array.isArray(data && data.items) ? data.items : [];
      render();
    } catch (err) {
      if (err.status !== 401) replace(list, errorBox(serverMessage(err.detail), load));
    }
  }

  function render() {
    replace(list, table([
      { label: t('audit.seq'), cell: (e) => String(e.seq), className: 'num mono' },
      { label: t('audit.time'), cell: (e) => formatDateTime(e.at), className: 'nowrap' },
      { label: t('audit.actor'), cell: (e) => e.actor || '', className: 'mono' },
      { label: t('audit.action'), cell: (e) => h('span', { title: e.action, text: tOr(`action.${e.action}`, e.action || '') }), className: 'nowrap' },
      { label: t('audit.target'), cell: (e) => targetCell(e), className: 'mono wrap' },
      { label: t('audit.detail'), cell: (e) => h('span', null, formatDetail(e.detail), e.sealed ? [' ', badge(t('audit.sealed'), 'neutral', t('audit.sealedHint'))] : null), className: 'mono wrap small' },
    ], items, { empty: t('audit.empty') }));
    newer.disabled = stack.length <= 1;
    older.disabled = items.length < PAGE;
    pageInfo.textContent = items.length ? `#${items[0].seq} – #${items[items.length - 1].seq}` : '';
  }

  // Records link to their view (the view itself is audited, so it is only a link).
  function targetCell(e) {
    if (!e.target) return '';
    if (/^record\.|^metadata\.|^page\.|^master\./.test(e.action || '')) {
      return h('a', { href: `#/records/${encodeURIComponent(e.target)}`, text: e.target });
    }
    return e.target;
  }

  filterForm.addEventListener('submit', (e) => { e.preventDefault(); stack = [undefined]; load(); });
  newer.addEventListener('click', () => { if (stack.length > 1) { stack.pop(); load(); } });
  older.addEventListener('click', () => {
    if (!items.length) return;
    stack.push(items[items.length - 1].seq);
    load();
  });

  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    replace(verifyOut, loading());
    try {
      const r = await api('/audit/verify', { method: 'POST', quiet: true });
      const breaks = Array.isArray(r && r.breaks) ? r.breaks : [];
      replace(verifyOut, h('div', { class: r && r.ok ? 'notice notice-ok' : 'notice notice-bad', role: 'status' },
        h('strong', { text: r && r.ok ? t('audit.verifyOk') : t('audit.verifyBroken') }), ' ',
        t('audit.verifyCounts', { entries: r ? r.entries : '?', checkpoints: r ? r.checkpoints : '?' }),
        breaks.length ? h('ul', null, breaks.map((b) => h('li', null,
          h('strong', { text: `#${b.seq} ${tOr(`break.${b.kind}`, b.kind || '')}` }), ' ', h('span', { class: 'mono small', text: b.message || '' })))) : null));
    } catch (err) {
      if (err.status !== 401) replace(verifyOut, errorBox(serverMessage(err.detail)));
    } finally {
      verifyBtn.disabled = false;
    }
  });

  load();
  return {};
}
