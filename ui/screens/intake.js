// Live intake (#/intake): a card per scanned file within a second of it landing (SSE), the
// queue counts, and the quarantine list. Technicians (no intake.view) see the counts only.

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr } from '../i18n.js';
import { can } from '../session.js';
import { connectEvents } from '../sse.js';
import { renderCard, applyUpdate, jobFromSummary } from './intake-card.js';
import { createQuarantinePanel } from './quarantine-panel.js';
import { toDate } from '../format.js';

const MAX_CARDS = 60;
const QUEUE_STATES = ['received', 'processing', 'stored', 'quarantined', 'duplicate'];
const FILTER_KEY = 'hall.intake.counter';

export function mount(container) {
  const detailed = can('intake.view');
  const jobs = new Map(); // id -> job model (insertion order = arrival order)
  const counters = new Set();
  let filter = readFilter();

  const status = h('span', { class: 'live-status', role: 'status' });
  const filterSelect = h('select', { class: 'counter-filter', 'aria-label': t('intake.filter') });
  const cards = h('div', { class: 'cards', 'aria-live': 'polite' });
  const emptyNote = h('p', { class: 'muted empty-cards', text: t('intake.waiting') });
  const counts = h('dl', { class: 'queue-counts' });
  const quarantine = can('quarantine.view') ? createQuarantinePanel() : null;

  const main = h('section', { class: 'intake-main', 'aria-labelledby': 'intake-title' },
    h('div', { class: 'toolbar' },
      h('h1', { id: 'intake-title', class: 'screen-title', text: t('nav.intake') }),
      status,
      detailed ? h('label', { class: 'inline-field' }, h('span', { text: t('intake.filter') }), filterSelect) : null),
    detailed ? cards : h('p', { class: 'notice', text: t('intake.countsOnly') }),
    detailed ? emptyNote : null);
  const side = h('aside', { class: 'intake-side' },
    h('section', { class: 'panel', 'aria-labelledby': 'queue-title' },
      h('h2', { id: 'queue-title', class: 'panel-title', text: t('queue.title') }), counts),
    quarantine ? quarantine.el : null);
  container.appendChild(h('div', { class: 'intake' }, main, side));

  function readFilter() {
    try { return localStorage.getItem(FILTER_KEY) || ''; } catch (_) { return ''; }
  }

  function renderFilter() {
    const options = [h('option', { value: '', text: t('intake.allCounters') })];
    for (const c of [...counters].sort()) options.push(h('option', { value: c, text: c, selected: c === filter }));
    if (filter && !counters.has(filter)) options.push(h('option', { value: filter, text: filter, selected: true }));
    replace(filterSelect, options);
    filterSelect.value = filter;
  }
  filterSelect.addEventListener('change', () => {
    filter = filterSelect.value;
    try { localStorage.setItem(FILTER_KEY, filter); } catch (_) { /* ignore */ }
    layoutCards();
  });

  function renderCounts(data) {
    const c = (data && data.counts) || {};
    const depth = (c.received || 0) + (c.processing || 0);
    const known = QUEUE_STATES.filter((s) => s in c);
    const other = Object.keys(c).filter((s) => !QUEUE_STATES.includes(s));
    replace(counts,
      h('div', { class: 'count count-depth' }, h('dt', { text: t('queue.depth') }), h('dd', { text: String(depth) })),
      [...known, ...other].map((s) => h('div', { class: `count count-${s}${c[s] ? '' : ' count-zero'}` },
        h('dt', { text: tOr(`queue.${s}`, s) }), h('dd', { text: String(c[s]) }))));
  }

  const when = (j) => { const d = toDate(j.landed_at); return d ? d.getTime() : j.arrived; };

  // Newest first; only the chosen counter; at most MAX_CARDS kept.
  function layoutCards() {
    const sorted = [...jobs.values()].sort((a, b) => when(b) - when(a));
    for (const old of sorted.splice(MAX_CARDS)) jobs.delete(old.id);
    const list = sorted.filter((j) => !filter || j.counter === filter);
    replace(cards, list.map((j) => j.el || renderCard(j)));
    emptyNote.hidden = list.length > 0;
  }

  function upsert(id, type, data) {
    if (!id) return;
    let job = jobs.get(id);
    const isNew = !job;
    if (isNew) {
      job = { id, state: 'new', arrived: Date.now() };
      jobs.set(id, job);
    }
    applyUpdate(job, type, data);
    if (job.counter && !counters.has(job.counter)) { counters.add(job.counter); renderFilter(); }
    renderCard(job);
    if (isNew) layoutCards();
    if (type === 'job.quarantined' && quarantine) quarantine.refresh();
  }

  async function loadQueue() {
    try {
      const data = await api('/queue', { quiet: true });
      renderCounts(data);
      if (detailed && data && Array.isArray(data.recent)) {
        for (const summary of data.recent) {
          if (!summary || !summary.id) continue;
          const fresh = { ...jobFromSummary(summary), arrived: toDate(summary.received_at)?.getTime() || 0 };
          const existing = jobs.get(summary.id);
          if (existing) {
            Object.assign(existing, { ...fresh, el: existing.el, img: existing.img, arrived: existing.arrived });
            renderCard(existing);
          } else jobs.set(summary.id, fresh);
          if (fresh.counter) counters.add(fresh.counter);
        }
        renderFilter();
        layoutCards();
      }
    } catch (_) {
      replace(counts, h('p', { class: 'muted', text: t('intake.queueFailed') }));
    }
  }

  function setStatus(state) {
    status.className = `live-status live-${state}`;
    status.textContent = t(`intake.live.${state}`);
  }

  renderFilter();
  renderCounts(null);
  loadQueue();
  if (quarantine) quarantine.refresh();
  const close = connectEvents({
    onEvent(type, data) {
      if (type === 'queue') renderCounts(data);
      else if (detailed) upsert(data.job_id, type, data);
    },
    onState: setStatus,
    onResync: () => { loadQueue(); if (quarantine) quarantine.refresh(); },
  });
  // The counts also arrive by SSE; poll the quarantine list slowly in case a decision was
  // taken at another desk.
  const timer = quarantine ? setInterval(() => quarantine.refresh(), 60000) : null;

  return {
    unmount() {
      close();
      clearInterval(timer);
    },
  };
}
