// Search (#/search?q=&status=&retention=&matter=&date_from=&date_to=): one box for words on
// the page, name, ID number, phone or 档号; filters; hits with highlighted snippets. ↑/↓ (or
// j/k) move through the hits, Enter opens the selected one at its page and line. Every search
// is audited on the server, so it runs on Enter only, never while typing.

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage } from '../i18n.js';
import { can } from '../session.js';
import { bindAll } from '../keys.js';
import { statusBadge, loading, errorBox, table } from '../widgets.js';
import { formatDate, formatDateTime } from '../format.js';
import { RETENTIONS } from '../validate.js';

const FILTERS = ['status', 'retention', 'matter', 'date_from', 'date_to'];
let cache = null; // {key, data, selected}: going back from a record shows the same hits, unaudited
let lastHash = '#/search';

/** The address of the last search (for the record view's "back to results"). */
export function lastSearchHash() { return lastHash; }

/** Text with [start, end) highlight ranges (code-point offsets, as Python counts) as nodes. */
export function highlightNodes(text, ranges) {
  const chars = Array.from(String(text || ''));
  const sorted = (Array.isArray(ranges) ? ranges : []).filter((r) => Array.isArray(r) && r[1] > r[0]).sort((a, b) => a[0] - b[0]);
  const out = [];
  let pos = 0;
  for (const [start, end] of sorted) {
    const s = Math.max(start, pos);
    if (s >= chars.length) break;
    if (s > pos) out.push(chars.slice(pos, s).join(''));
    if (end > s) out.push(h('mark', { text: chars.slice(s, Math.min(end, chars.length)).join('') }));
    pos = Math.max(pos, Math.min(end, chars.length));
  }
  if (pos < chars.length) out.push(chars.slice(pos).join(''));
  return out;
}

export function hitHref(hit, searchId) {
  const q = new URLSearchParams();
  if (searchId !== undefined && searchId !== null) q.set('search_id', String(searchId));
  if (hit.page !== null && hit.page !== undefined) q.set('page', String(hit.page));
  if (hit.line !== null && hit.line !== undefined) q.set('line', String(hit.line));
  const qs = q.toString();
  return `#/records/${encodeURIComponent(hit.record_id)}${qs ? `?${qs}` : ''}`;
}

export function mount(container, { query, navigate }) {
  const box = h('input', { id: 'search-box', type: 'search', class: 'search-box', autocomplete: 'off', spellcheck: 'false', maxlength: 200,
    placeholder: t('search.placeholder'), 'aria-label': t('search.label') });
  const f = {
    status: h('select', { name: 'status' }, h('option', { value: '', text: t('common.all') }),
      ['draft', 'confirmed', 'transferred'].map((s) => h('option', { value: s, text: t(`status.${s}`) }))),
    retention: h('select', { name: 'retention' }, h('option', { value: '', text: t('common.all') }),
      RETENTIONS.map((r) => h('option', { value: r, text: t(`retention.${r}`) }))),
    matter: h('input', { type: 'text', name: 'matter', maxlength: 100, placeholder: t('search.matterHint') }),
    date_from: h('input', { type: 'date', name: 'date_from' }),
    date_to: h('input', { type: 'date', name: 'date_to' }),
  };
  const labelled = (key, el) => h('label', { class: 'inline-field' }, h('span', { text: t(key) }), el);
  const form = h('form', { class: 'search-form', role: 'search' },
    h('div', { class: 'search-row' }, box, h('button', { type: 'submit', class: 'btn btn-primary', text: t('nav.search') })),
    h('div', { class: 'filters' },
      labelled('search.dateFrom', f.date_from), labelled('search.dateTo', f.date_to),
      labelled('field.matter', f.matter), labelled('field.retention', f.retention), labelled('search.status', f.status),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: t('search.clearFilters'), onClick: clearFilters })));
  const meta = h('p', { class: 'search-meta muted', 'aria-live': 'polite' });
  const results = h('div', { class: 'search-results' });
  container.appendChild(h('div', { class: 'search' }, h('h1', { class: 'screen-title visually-hidden', text: t('nav.search') }), form, meta, results));

  let hits = [];
  let searchId = null;
  let selected = -1;
  let lastKey = null;
  let controller = null;

  function fromQuery(q) {
    box.value = q.get('q') || '';
    for (const k of FILTERS) f[k].value = q.get(k) || '';
  }

  function formParams() {
    const p = new URLSearchParams();
    if (box.value.trim()) p.set('q', box.value.trim());
    for (const k of FILTERS) if (f[k].value.trim()) p.set(k, f[k].value.trim());
    return p;
  }

  function submit() {
    const p = formParams();
    const hash = `#/search${p.toString() ? `?${p}` : ''}`;
    if (hash === location.hash) run(p, true); else navigate(hash);
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  for (const k of ['status', 'retention', 'date_from', 'date_to']) f[k].addEventListener('change', () => { if (box.value.trim()) submit(); });

  function clearFilters() {
    for (const k of FILTERS) f[k].value = '';
    if (box.value.trim()) submit();
  }

  async function run(params, force = false) {
    const key = params.toString();
    if (!params.get('q')) { hits = []; lastKey = null; meta.textContent = ''; showDrafts(); return; }
    if (!force && cache && cache.key === key) { lastKey = key; show(cache.data, cache.selected); return; }
    if (controller) controller.abort();
    controller = new AbortController();
    replace(results, loading());
    meta.textContent = '';
    try {
      const data = await api('/search', { query: { ...Object.fromEntries(params), limit: 50 }, quiet: true, signal: controller.signal });
      cache = { key, data, selected: 0 };
      lastHash = `#/search?${key}`;
      lastKey = key;
      show(data, 0);
    } catch (err) {
      if (err.name === 'AbortError' || err.status === 401) return;
      replace(results, errorBox(serverMessage(err.detail, 'search.failed'), () => run(params, true)));
    }
  }

  function show(data, sel) {
    hits = Array.isArray(data && data.hits) ? data.hits : [];
    searchId = data ? data.search_id : null;
    meta.textContent = t('search.meta', { n: hits.length, ms: data && typeof data.ms === 'number' ? data.ms : '—' });
    if (!hits.length) { replace(results, h('p', { class: 'notice', text: t('search.none') })); selected = -1; return; }
    replace(results, h('ol', { class: 'hits', role: 'listbox', 'aria-label': t('search.results') }, hits.map(hitItem)));
    select(Math.min(sel, hits.length - 1), false);
  }

  function hitItem(hit, i) {
    const matched = Array.isArray(hit.matched) ? hit.matched : [];
    return h('li', { class: 'hit', role: 'option', id: `hit-${i}`, 'aria-selected': 'false', onClick: () => select(i, false) },
      h('a', { class: 'hit-link', href: hitHref(hit, searchId) },
        h('div', { class: 'hit-head' },
          h('span', { class: 'hit-code mono', text: hit.archival_code || t('search.noCode') }),
          h('span', { class: 'hit-title', text: hit.title || t('record.untitled') }),
          statusBadge(hit.status),
          h('span', { class: 'hit-date muted small', text: formatDate(hit.created_at) })),
        hit.snippet ? h('p', { class: 'hit-snippet' }, highlightNodes(hit.snippet, hit.highlights)) : null,
        h('div', { class: 'hit-foot small muted' },
          matched.map((m) => h('span', { class: 'tag', text: tOr(`matched.${m}`, m) })),
          hit.page !== null && hit.page !== undefined ? h('span', { text: t('record.pageN', { n: Number(hit.page) + 1 }) }) : null)));
  }

  function select(i, scroll = true) {
    if (!hits.length) return;
    selected = Math.max(0, Math.min(hits.length - 1, i));
    if (cache) cache.selected = selected;
    results.querySelectorAll('.hit').forEach((el, k) => {
      el.classList.toggle('selected', k === selected);
      el.setAttribute('aria-selected', k === selected ? 'true' : 'false');
    });
    const el = document.getElementById(`hit-${selected}`);
    if (el) {
      box.setAttribute('aria-activedescendant', el.id);
      if (scroll) el.scrollIntoView({ block: 'nearest' });
    }
  }

  function openSelected() {
    if (selected >= 0 && hits[selected]) navigate(hitHref(hits[selected], searchId));
  }

  // Drafts still waiting for their metadata, shown while the box is empty.
  async function showDrafts() {
    if (!can('records.read')) { replace(results); return; }
    replace(results, loading());
    try {
      const data = await api('/records', { query: { status: 'draft', limit: 20 }, quiet: true });
      const items = Array.isArray(data && data.items) ? data.items : [];
      replace(results, h('section', { class: 'panel' }, h('h2', { class: 'panel-title', text: t('search.drafts') }),
        table([
          { label: t('search.created'), cell: (r) => formatDateTime(r.created_at), className: 'nowrap' },
          { label: t('field.title'), cell: (r) => h('a', { href: `#/records/${encodeURIComponent(r.id)}`, text: r.title || t('record.untitled') }) },
          { label: t('field.applicant'), cell: (r) => r.applicant || '' },
          { label: t('search.counter'), cell: (r) => r.counter || '' },
          { label: t('search.pages'), cell: (r) => String(r.page_count ?? '') },
        ], items, { empty: t('search.noDrafts'), onRowClick: (r) => navigate(`#/records/${encodeURIComponent(r.id)}`) })));
    } catch (_) { replace(results); }
  }

  // Arrow keys work from the search box too, but not inside the filter fields.
  const inFilter = (e) => e.target !== box && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName || '');
  const unbind = bindAll([
    ['arrowdown', (e) => { if (!hits.length || inFilter(e)) return false; select(selected + 1); return true; }, { inFields: true, desc: 'keys.nextHit' }],
    ['arrowup', (e) => { if (!hits.length || inFilter(e)) return false; select(selected - 1); return true; }, { inFields: true, desc: 'keys.prevHit' }],
    ['j', () => select(selected + 1), { desc: 'keys.nextHit' }],
    ['k', () => select(selected - 1), { desc: 'keys.prevHit' }],
    ['enter', (e) => {
      // In the box: search, or open the hit when the hits belong to what is typed.
      if (e.target === box && formParams().toString() !== lastKey) { submit(); return true; }
      if (e.target !== box && e.target.closest && e.target.closest('form,a,button')) return false;
      openSelected();
      return true;
    }, { inFields: true, desc: 'keys.openHit' }],
  ]);

  fromQuery(query);
  run(formParams());
  box.focus();
  return {
    update({ query: q }) { fromQuery(q); run(formParams()); },
    unmount() { unbind(); if (controller) controller.abort(); },
  };
}
