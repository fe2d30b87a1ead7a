// The quarantine list on the intake screen: files that could not become records, with the
// reason and what to do. Supervisors (quarantine.decide) can download the file, retry it or
// dismiss it (POST /quarantine/{job}/decision).

import { h, replace } from '../dom.js';
import { api, apiUrl } from '../api.js';
import { t, tOr } from '../i18n.js';
import { can } from '../session.js';
import { openDialog, toast, loading, errorBox } from '../widgets.js';
import { formatWhen } from '../format.js';

export function createQuarantinePanel() {
  const list = h('div', { class: 'quarantine-list' });
  const count = h('span', { class: 'panel-count' });
  const el = h('section', { class: 'panel quarantine-panel', 'aria-labelledby': 'quarantine-title' },
    h('div', { class: 'panel-head' },
      h('h2', { id: 'quarantine-title', class: 'panel-title' }, t('quarantine.title'), ' ', count),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: t('common.refresh'), onClick: () => refresh() })),
    list);
  let busy = false;

  async function refresh() {
    if (busy) return;
    busy = true;
    if (!list.firstChild) list.appendChild(loading());
    try {
      const data = await api('/quarantine', { query: { limit: 50 }, quiet: true });
      render(Array.isArray(data && data.items) ? data.items : []);
    } catch (err) {
      replace(list, errorBox(t('quarantine.loadFailed'), refresh));
    } finally {
      busy = false;
    }
  }

  function render(items) {
    count.textContent = items.length ? `(${items.length})` : '';
    if (!items.length) { replace(list, h('p', { class: 'muted', text: t('quarantine.empty') })); return; }
    replace(list, h('ul', { class: 'plain-list' }, items.map(itemRow)));
  }

  function itemRow(item) {
    const job = item.job_id || item.id;
    const decided = item.decision ? h('span', { class: 'badge badge-neutral', text: tOr(`quarantine.decided.${item.decision}`, item.decision) }) : null;
    return h('li', { class: 'quarantine-item' },
      h('div', { class: 'q-head' },
        h('strong', { text: tOr(`reason.${item.reason_code}`, item.reason_code || t('common.unknown')) }),
        h('time', { class: 'muted small', text: formatWhen(item.at || item.quarantined_at || item.landed_at) })),
      h('div', { class: 'small' },
        item.counter ? h('span', { class: 'q-counter', text: item.counter }) : null,
        item.original_name ? h('span', { class: 'q-name mono', text: item.original_name }) : null),
      item.reason ? h('div', { class: 'small muted', text: item.reason }) : null,
      tOr(`reasonTodo.${item.reason_code}`, '') ? h('div', { class: 'small q-todo', text: tOr(`reasonTodo.${item.reason_code}`, '') }) : null,
      decided,
      can('quarantine.decide') && !item.decision ? h('div', { class: 'q-actions' },
        h('a', { class: 'btn btn-small', href: apiUrl(`/quarantine/${encodeURIComponent(job)}/file`), download: '', text: t('quarantine.download') }),
        h('button', { type: 'button', class: 'btn btn-small', text: t('quarantine.retry'), onClick: () => decide(job, 'retry') }),
        h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', text: t('quarantine.dismiss'), onClick: () => decide(job, 'dismiss') })) : null);
  }

  async function decide(job, action) {
    const result = await openDialog({
      title: t(`quarantine.${action}Title`),
      body: t(`quarantine.${action}Body`),
      confirmLabel: t(`quarantine.${action}`),
      danger: action === 'dismiss',
      reason: true,
      reasonMin: action === 'dismiss' ? 2 : 0,
      reasonLabel: t('quarantine.note'),
    });
    if (!result) return;
    try {
      await api(`/quarantine/${encodeURIComponent(job)}/decision`, { method: 'POST', body: { action, note: result.reason || '' } });
      toast(t(`quarantine.${action}Done`), 'success');
    } catch (_) { /* the API wrapper showed the message */ }
    refresh();
  }

  return { el, refresh };
}
