// Record view (#/records/<id>?search_id=&page=&line=): page image | OCR text + metadata form,
// save (Ctrl+S), confirm and archive (Ctrl+Enter) showing the assigned 档号, the processing
// history, and for supervisors the shred action (reason + typed confirmation).

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage } from '../i18n.js';
import { can } from '../session.js';
import { bindAll } from '../keys.js';
import { toast, openDialog, statusBadge, loading, errorBox } from '../widgets.js';
import { formatDateTime, formatDetail } from '../format.js';
import { createPages } from './record-pages.js';
import { createForm, fieldLabel } from './record-form.js';
import { lastSearchHash } from './search.js';

export function mount(container, { params, query }) {
  const id = params[0];
  let pages = null;
  let form = null;
  let record = null;
  let unbind = () => {};
  let busy = false;
  container.appendChild(loading());

  async function load() {
    replace(container, loading());
    try {
      record = await api(`/records/${encodeURIComponent(id)}`, { query: { search_id: query.get('search_id') }, quiet: true });
    } catch (err) {
      if (err.status === 401) return;
      const gone = err.status === 410 || err.code === 'record_shredded';
      replace(container, gone ? h('div', { class: 'notice notice-dark' },
        h('strong', { text: t('status.shredded') }), ' ', t('record.shreddedNote'))
        : errorBox(serverMessage(err.detail), load));
      return;
    }
    render();
  }

  function render() {
    if (pages) pages.destroy();
    unbind();
    // The server accepts edits of drafts and of confirmed records (then with every required field).
    const editable = (record.status === 'draft' || record.status === 'confirmed') && can('records.edit');
    pages = createPages(record);
    form = createForm(record, {
      readOnly: !editable,
      forConfirmation: record.status === 'confirmed',
      onJumpToLine: (n) => pages.jumpToGlobalLine(n),
      onChange: () => { form.refreshPending(); updateDirty(); },
    });
    const dirtyNote = h('span', { class: 'dirty-note', hidden: true, text: t('record.unsaved') });
    const saveBtn = editable ? h('button', { type: 'button', class: 'btn', title: 'Ctrl+S', text: t('record.save'), onClick: save }) : null;
    const confirmBtn = record.status === 'draft' && can('records.confirm')
      ? h('button', { type: 'button', class: 'btn btn-primary', title: 'Ctrl+Enter', text: t('record.confirm'), onClick: confirmArchive }) : null;
    const shredBtn = record.status !== 'shredded' && can('records.shred')
      ? h('button', { type: 'button', class: 'btn btn-danger-outline', text: t('record.shred'), onClick: shredRecord }) : null;
    function updateDirty() { dirtyNote.hidden = !form.isDirty(); }

    const meta = record.metadata || {};
    const title = meta.title || record.title || record.original_name || t('record.untitled');
    const header = h('div', { class: 'record-header' },
      query.get('search_id') ? h('a', { class: 'btn btn-small btn-ghost', href: lastSearchHash(), text: `← ${t('record.backToSearch')}` }) : null,
      h('h1', { class: 'record-title', title, text: title }),
      statusBadge(record.status),
      record.archival_code || meta.archival_code ? h('span', { class: 'code-pill mono', title: fieldLabel('archival_code', record.field_labels), text: record.archival_code || meta.archival_code }) : null,
      h('span', { class: 'record-facts muted small' },
        [record.counter, t('record.pagesCount', { n: record.page_count ?? (record.pages || []).length }), formatDateTime(record.created_at)].filter(Boolean).join(' · ')),
      h('span', { class: 'record-actions' }, dirtyNote, saveBtn, confirmBtn, shredBtn));

    const history = h('details', { class: 'history' },
      h('summary', { text: t('record.history', { n: (record.events || []).length }) }),
      timeline(record.events || []));
    const side = h('div', { class: 'record-side' },
      pages.textPane,
      h('section', { class: 'record-form panel', 'aria-label': t('record.metadata') },
        h('h2', { class: 'panel-title' }, t('record.metadata'), !editable ? h('span', { class: 'muted small', text: ` · ${t('record.readOnly')}` }) : null),
        transferNote(record.transfer, record.status),
        form.el, history));
    replace(container, h('div', { class: 'record' }, header, h('div', { class: 'record-split' }, pages.imagePane, side)));
    pages.start();

    // Opened from a search hit: show that page and line.
    const hitPage = query.get('page');
    if (hitPage !== null && hitPage !== '') {
      const line = query.get('line');
      pages.goTo(Number(hitPage), line === null || line === '' ? null : Number(line));
    }

    unbind = bindAll([
      ['ctrl+s', () => { if (editable) save(); }, { desc: 'keys.save' }],
      ['ctrl+enter', () => { if (confirmBtn) confirmArchive(); }, { desc: 'keys.confirm' }],
      ['+', () => pages.zoomIn(), { desc: 'keys.zoomIn' }],
      ['-', () => pages.zoomOut(), { desc: 'keys.zoomOut' }],
      ['0', () => pages.fit(), { desc: 'keys.zoomReset' }],
      ['j', () => pages.next(), { desc: 'keys.nextPage' }],
      ['k', () => pages.prev(), { desc: 'keys.prevPage' }],
    ]);
  }

  async function save({ silent = false } = {}) {
    if (busy) return false;
    if (form.check(false).length) { toast(t('record.fixProblems'), 'error'); return false; }
    const fields = form.changes();
    if (!Object.keys(fields).length) { if (!silent) toast(t('record.nothingToSave')); return true; }
    busy = true;
    try {
      const data = await api(`/records/${encodeURIComponent(id)}/metadata`, { method: 'PATCH', body: { fields }, quiet: true });
      form.setSaved(data && data.metadata ? data.metadata : { ...(record.metadata || {}), ...fields });
      record.metadata = data && data.metadata ? data.metadata : record.metadata;
      if (!silent) toast(t('record.saved'), 'success');
      container.querySelector('.dirty-note').hidden = true;
      return true;
    } catch (err) {
      reportProblems(err);
      return false;
    } finally {
      busy = false;
    }
  }

  function reportProblems(err) {
    if (err.problems && err.problems.length) {
      const others = form.showProblems(err.problems);
      toast([t('record.fixProblems'), ...others].join(' '), 'error');
    } else if (err.status !== 401) {
      toast(serverMessage(err.detail), 'error');
    }
  }

  async function confirmArchive() {
    if (busy) return;
    const pendingCount = form.pendingNames().length;
    if (pendingCount) {
      const ok = await openDialog({ title: t('record.pendingTitle'), body: t('record.pendingBody', { n: pendingCount }), confirmLabel: t('form.acceptAll') });
      if (!ok) return;
      form.acceptAll();
      form.refreshPending();
    }
    if (form.check(true).length) { toast(t('record.fixProblems'), 'error'); return; }
    const sure = await openDialog({ title: t('record.confirmTitle'), body: t('record.confirmBody'), confirmLabel: t('record.confirm') });
    if (!sure) return;
    if (!(await save({ silent: true }))) return;
    busy = true;
    try {
      const data = await api(`/records/${encodeURIComponent(id)}/confirm`, { method: 'POST', quiet: true });
      const code = data && data.archival_code;
      await openDialog({
        title: t('record.confirmedTitle'),
        body: h('div', { class: 'confirmed-code' }, h('p', { text: t('record.confirmedBody') }), h('p', { class: 'big-code mono', text: code || '—' })),
        confirmLabel: t('common.ok'),
        cancelLabel: null,
      });
      busy = false;
      await load();
    } catch (err) {
      if (err.status === 409) toast(serverMessage(err.detail), 'error'); else reportProblems(err);
    } finally {
      busy = false;
    }
  }

  async function shredRecord() {
    const word = t('record.shredWord');
    const result = await openDialog({
      title: t('record.shredTitle'),
      body: t('record.shredBody'),
      confirmLabel: t('record.shred'),
      danger: true,
      reason: true,
      reasonMin: 2,
      reasonLabel: t('record.shredReason'),
      typed: word,
      typedLabel: t('record.shredType', { word }),
    });
    if (!result) return;
    try {
      await api(`/records/${encodeURIComponent(id)}/shred`, { method: 'POST', body: { reason: result.reason } });
      toast(t('record.shredded'), 'success');
      form = null;
      load();
    } catch (_) { /* shown by the API wrapper */ }
  }

  load();
  return {
    isDirty: () => Boolean(form && form.isDirty()),
    update({ query: q }) {
      // Same record, another hit (page/line) from the search screen.
      query = q;
      if (pages && q.get('page') !== null) pages.goTo(Number(q.get('page')), q.get('line') === null ? null : Number(q.get('line')));
    },
    unmount() { unbind(); if (pages) pages.destroy(); },
  };
}

// Where the record stands with the central archive (移交): the receipt of a transferred record,
// or the archive's failed 四性 checks of a rejected one, in the staff's language.
export function transferNote(x, status) {
  if (!x) return null;
  const note = (kind, state, ...content) => h('div', { class: `notice notice-${kind} transfer-note small`, 'data-transfer': state }, ...content);
  if (status === 'transferred' || x.state === 'transferred') {
    const r = x.receipt || {};
    const at = r.received_at || x.transferred_at;
    return note('ok', 'transferred',
      h('strong', { text: t('xfer.record.transferred') }),
      at ? h('div', { text: t('xfer.record.receiptAt', { at: formatDateTime(at) }) }) : null,
      r.receipt_id ? h('div', { class: 'muted mono', text: t('xfer.record.receiptId', { id: r.receipt_id }) }) : null);
  }
  if (x.state === 'rejected') {
    return note('bad', 'rejected',
      h('strong', { text: t('xfer.record.rejected') }),
      h('ul', { class: 'transfer-failed' }, (x.failed_items || []).map((f) => h('li', null,
        h('span', { text: `${tOr(`xfer.prop.${f.property}`, String(f.property || ''))} · ${tOr(`xfer.item.${f.item}`, String(f.item || ''))}` }),
        f.detail ? h('span', { class: 'muted', text: `：${f.detail}` }) : null))),
      h('div', { class: 'muted', text: t('xfer.record.rejectedHint') }));
  }
  if (x.state === 'blocked') return note('bad', 'blocked', t('xfer.record.blocked'));
  if (status !== 'confirmed' || x.state === 'none') return null; // a draft's files travel silently
  return note('info', x.state,
    h('span', { text: t(x.state === 'pending' ? 'xfer.record.pending' : 'xfer.record.waitingBlobs') }),
    x.last_error ? h('div', { class: 'muted', text: t('xfer.record.lastError', { e: x.last_error }) }) : null);
}

function timeline(events) {
  if (!events.length) return h('p', { class: 'muted', text: t('common.empty') });
  return h('ol', { class: 'timeline' }, events.map((e) => {
    const outcome = String(e.outcome || '');
    const kind = outcome === 'success' ? 'ok' : outcome === 'failure' ? 'bad' : 'warn';
    return h('li', { class: `tl-item tl-${kind}` },
      h('time', { class: 'tl-time mono small', text: formatDateTime(e.at) }),
      h('span', { class: 'tl-type', text: tOr(`event.${e.type}`, e.type || '') }),
      e.page !== null && e.page !== undefined ? h('span', { class: 'muted small', text: t('record.pageN', { n: Number(e.page) + 1 }) }) : null,
      h('span', { class: `badge badge-${kind}`, text: tOr(`outcome.${outcome}`, outcome) }),
      e.agent ? h('span', { class: 'muted small', text: e.agent }) : null,
      e.detail && Object.keys(e.detail).length ? h('div', { class: 'tl-detail mono small', text: formatDetail(e.detail) }) : null);
  }));
}

