// Shared widgets: toasts, a modal dialog (confirm / reason / typed confirmation), tables,
// badges for statuses and quality flags. The zoom/pan image viewer is in viewer.js and
// re-exported here. All text goes in through textContent (see dom.js).

import { h, clear } from './dom.js';
import { t, tOr, serverMessage } from './i18n.js';

export { createViewer } from './viewer.js';

// --- toasts ---------------------------------------------------------------------------------------
let toastBox = null;

/** toast('已保存', 'success'|'error'|'info', ms). Errors stay longer and are announced. */
export function toast(message, kind = 'info', ms) {
  if (!toastBox) {
    toastBox = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(toastBox);
  }
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null },
    h('span', { class: 'toast-text', text: message }),
    h('button', { class: 'toast-close', type: 'button', 'aria-label': t('common.close'), text: '×', onClick: () => item.remove() }));
  toastBox.appendChild(item);
  setTimeout(() => item.remove(), ms || (kind === 'error' ? 8000 : 4000));
  return item;
}

// --- modal dialog ---------------------------------------------------------------------------------
/**
 * openDialog({title, body, confirmLabel, cancelLabel, danger, reason, reasonLabel, reasonMin,
 *             typed, typedLabel, extra, validate})
 * Resolves {reason} when confirmed, null when cancelled. `typed`: the text the user must type
 * before the confirm button is enabled (irreversible actions). `body` may be a string or nodes;
 * `extra` more nodes (e.g. inputs) and `validate()` whether they allow confirming.
 * `cancelLabel: null` leaves out the cancel button (a plain notice).
 */
export function openDialog(options) {
  const { title, body, confirmLabel = t('common.ok'), cancelLabel = t('common.cancel'), danger = false,
    reason = false, reasonLabel = '', reasonMin = 1, typed = null, typedLabel = '', extra = null, validate = null } = options;
  return new Promise((resolve) => {
    const reasonInput = reason ? h('textarea', { class: 'dialog-reason', rows: 3, maxlength: 500, required: true }) : null;
    const typedInput = typed ? h('input', { type: 'text', class: 'dialog-typed', autocomplete: 'off', spellcheck: 'false' }) : null;
    const okButton = h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary', text: confirmLabel });
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { class: 'dialog-title', text: title }),
      typeof body === 'string' ? h('p', { class: 'dialog-body', text: body }) : body,
      extra,
      reasonInput && h('label', { class: 'field' }, h('span', { class: 'field-label', text: reasonLabel }), reasonInput),
      typedInput && h('label', { class: 'field' }, h('span', { class: 'field-label', text: typedLabel }), typedInput),
      h('div', { class: 'dialog-actions' },
        cancelLabel === null ? null : h('button', { type: 'button', class: 'btn', text: cancelLabel, onClick: () => finish(null) }),
        okButton));
    const dialog = h('dialog', { class: 'dialog' }, form);
    const update = () => {
      const reasonOk = !reasonInput || reasonInput.value.trim().length >= reasonMin;
      const typedOk = !typedInput || typedInput.value.trim() === typed;
      okButton.disabled = !(reasonOk && typedOk && (!validate || validate()));
    };
    let done = false;
    function finish(result) {
      if (done) return;
      done = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      resolve(result);
    }
    form.addEventListener('input', update);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (okButton.disabled) return;
      finish({ reason: reasonInput ? reasonInput.value.trim() : null });
    });
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); finish(null); });
    document.body.appendChild(dialog);
    update();
    dialog.showModal();
    (reasonInput || typedInput || okButton).focus();
  });
}

export function confirmDialog(title, body, options = {}) {
  return openDialog({ title, body, ...options }).then((r) => r !== null);
}

// --- tables ---------------------------------------------------------------------------------------
/**
 * table(columns, rows, {empty, rowClass, onRowClick})
 * columns: [{label, cell: (row) => string | Node, className}]
 */
export function table(columns, rows, options = {}) {
  // Headers keep only the alignment of their column (not its monospace or small type).
  const thClass = (c) => (c.className && /\bnum\b/.test(c.className) ? 'num' : null);
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { class: thClass(c), scope: 'col', text: c.label }))));
  const tbody = h('tbody');
  if (!rows.length) {
    tbody.appendChild(h('tr', null, h('td', { class: 'table-empty', colspan: columns.length, text: options.empty || t('common.empty') })));
  }
  for (const row of rows) {
    const tr = h('tr', { class: options.rowClass ? options.rowClass(row) : null });
    for (const c of columns) {
      const value = c.cell(row);
      tr.appendChild(h('td', { class: c.className }, value === null || value === undefined ? '' : value));
    }
    if (options.onRowClick) {
      tr.classList.add('clickable');
      tr.addEventListener('click', (e) => { if (!e.target.closest('a,button,input,select')) options.onRowClick(row); });
    }
    tbody.appendChild(tr);
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' }, thead, tbody));
}

/** A key/value table for objects whose exact shape is not fixed (device settings, details). */
export function kvTable(obj) {
  const rows = Object.entries(obj || {}).map(([k, v]) => ({ k, v }));
  return table([
    { label: t('device.key'), cell: (r) => r.k, className: 'mono' },
    { label: t('device.value'), cell: (r) => (typeof r.v === 'object' && r.v !== null ? JSON.stringify(r.v) : String(r.v)), className: 'mono wrap' },
  ], rows);
}

// --- badges ---------------------------------------------------------------------------------------
export function badge(text, kind = 'neutral', title) {
  return h('span', { class: `badge badge-${kind}`, title, text });
}

export function statusBadge(status) {
  const kind = { draft: 'warn', confirmed: 'ok', transferred: 'info', shredded: 'dark' }[status] || 'neutral';
  return badge(tOr(`status.${status}`, status || '—'), kind);
}

// Flags that mean "scan the paper again while the citizen is still here" (api.md: rescan).
export const RESCAN_FLAGS = ['blank', 'blurry', 'too_dark', 'low_dpi', 'duplicate'];
const CORRECTED_FLAGS = ['skewed', 'upside_down', 'sideways'];

export function flagBadge(flag) {
  const kind = RESCAN_FLAGS.includes(flag) ? 'bad' : CORRECTED_FLAGS.includes(flag) ? 'warn' : flag === 'seal' ? 'seal' : 'neutral';
  return badge(tOr(`flag.${flag}`, flag), kind, tOr(`flagHelp.${flag}`, flag));
}

export function flagBadges(flags) {
  const list = Array.isArray(flags) ? flags : [];
  return h('span', { class: 'badges' }, list.map(flagBadge));
}

// --- small helpers --------------------------------------------------------------------------------
export function loading() {
  return h('div', { class: 'loading', role: 'status', text: t('common.loading') });
}

export function errorBox(message, onRetry) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('span', { text: message }),
    onRetry && h('button', { type: 'button', class: 'btn', text: t('common.retry'), onClick: onRetry }));
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', { class: 'panel-title', text: title }), ...children);
}

/** Put a loading indicator into `el`, run `load()`, render its result with `render(data)`. */
export async function loadInto(el, load, render) {
  clear(el).appendChild(loading());
  try {
    const data = await load();
    clear(el);
    const node = render(data);
    if (node) el.appendChild(node);
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    clear(el).appendChild(errorBox(serverMessage(err && err.detail), () => loadInto(el, load, render)));
  }
}
