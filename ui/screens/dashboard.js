// Dashboard (#/dashboard, supervisors): throughput, queue, latency, quality per counter, OCR
// confidence, retrieval success, replication and disk, drawn with charts.js.
// The Dashboard JSON is not final: mapDashboard() is the only place that knows its shape.

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage } from '../i18n.js';
import { barChart, lineChart, histogram, stackedBars, meter } from '../charts.js';
import { table, badge, loading, errorBox } from '../widgets.js';
import { formatBytes, formatPercent, formatNumber, formatDateTime } from '../format.js';

const FLAG_ORDER = ['blank', 'skewed', 'blurry', 'too_dark', 'low_dpi', 'upside_down', 'sideways', 'seal', 'duplicate'];
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const arr = (v) => (Array.isArray(v) ? v : []);

/**
 * The API's Dashboard JSON -> the view model the charts use. Adjust here when the backend's
 * shape changes; nothing else reads the raw JSON.
 */
export function mapDashboard(raw, now = new Date()) {
  const d = raw || {};
  const today = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
  // pages per hour: 24 slots of one day ("2026-11-21T09"): today, or the latest day present
  // when the box's clock and the browser's disagree about what "today" is.
  const HOUR = /^(\d{4}-\d{2}-\d{2})T(\d{2})/;
  const hourRows = arr(d.pages_per_hour).map((row) => ({ m: HOUR.exec(String(row.hour || '')), pages: num(row.pages) })).filter((r) => r.m);
  const hourDays = [...new Set(hourRows.map((r) => r.m[1]))].sort();
  const hourDay = hourDays.includes(today) || !hourDays.length ? today : hourDays[hourDays.length - 1];
  const hours = Array.from({ length: 24 }, () => 0);
  for (const r of hourRows) if (r.m[1] === hourDay) hours[Number(r.m[2])] += r.pages;
  const perDay = arr(d.pages_per_day).map((r) => ({ day: String(r.day || ''), pages: num(r.pages) }));
  const latency = arr(d.latency_s).map((r) => ({ day: String(r.day || ''), p50: r.p50 ?? null, p95: r.p95 ?? null }));
  const counters = arr(d.per_counter).map((r) => ({
    counter: String(r.counter ?? '—'),
    pages: num(r.pages),
    quarantined: num(r.quarantined),
    flagged: num(r.flagged),
    flags: r.flags && typeof r.flags === 'object' ? r.flags : {},
  }));
  const flagNames = [...new Set([...FLAG_ORDER.filter((f) => counters.some((c) => c.flags[f])), ...counters.flatMap((c) => Object.keys(c.flags))])];
  const conf = d.ocr_confidence || {};
  const repl = d.replication || {};
  const xfer = d.transfer || {};
  const disk = d.disk || {};
  return {
    hours,
    hourDay,
    currentHour: hourDay === today ? now.getHours() : -1,
    perDay,
    queue: d.queue && typeof d.queue === 'object' ? d.queue : {},
    latency,
    counters,
    flagNames,
    confidence: { bins: arr(conf.bins), counts: arr(conf.counts).map(num) },
    retrieval: { searches: num((d.retrieval || {}).searches), opened: num((d.retrieval || {}).opened) },
    replication: {
      state: String(repl.state || 'not_configured'), backlog: repl.backlog ?? null,
      target: repl.target || null, lastSync: repl.last_sync || null, error: repl.error || null,
      alerts: Array.isArray(repl.alerts) ? repl.alerts : [],
    },
    transfer: {
      state: String(xfer.state || 'disabled'),
      pendingPackages: num(xfer.pending_packages), pendingBlobs: num(xfer.pending_blobs),
      transferred: num(xfer.transferred), rejected: num(xfer.rejected),
      lastSuccess: xfer.last_success || null, problem: xfer.problem || null,
      error: xfer.last_error || null, windows: xfer.windows || null,
    },
    disk: { total: num(disk.total), used: num(disk.used), free: num(disk.free) },
  };
}

const shortDay = (day) => day.slice(5); // '2026-11-21' -> '11-21'

export function mount(container) {
  const days = h('select', { 'aria-label': t('dash.range') },
    [7, 14, 30].map((n) => h('option', { value: String(n), text: t('dash.days', { n }) })));
  const body = h('div', { class: 'dash-grid' });
  container.appendChild(h('div', { class: 'dashboard' },
    h('div', { class: 'toolbar' },
      h('h1', { class: 'screen-title', text: t('nav.dashboard') }),
      h('label', { class: 'inline-field' }, h('span', { text: t('dash.range') }), days),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: t('common.refresh'), onClick: () => load() })),
    body));
  days.addEventListener('change', () => load());

  let controller = null;
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    if (!body.firstChild) body.appendChild(loading());
    try {
      const raw = await api('/dashboard', { query: { days: days.value }, quiet: true, signal: controller.signal });
      render(mapDashboard(raw));
    } catch (err) {
      if (err.name === 'AbortError' || err.status === 401) return;
      replace(body, errorBox(serverMessage(err.detail), load));
    }
  }

  function card(titleKey, ...content) {
    return h('section', { class: 'panel dash-card' }, h('h2', { class: 'panel-title', text: t(titleKey) }), ...content);
  }

  function render(m) {
    const empty = t('dash.noData');
    const queueStates = Object.keys(m.queue);
    const depth = num(m.queue.received) + num(m.queue.processing);
    const rate = m.retrieval.searches ? m.retrieval.opened / m.retrieval.searches : null;
    replace(body,
      card('dash.pagesPerHour', barChart({ labels: m.hours.map((_, i) => String(i)), values: m.hours, yLabel: t('dash.pages'), highlight: m.currentHour, emptyText: empty, caption: m.hourDay })),
      card('dash.pagesPerDay', lineChart({ labels: m.perDay.map((r) => shortDay(r.day)), series: [{ name: t('dash.pages'), values: m.perDay.map((r) => r.pages) }], yLabel: t('dash.pages'), emptyText: empty })),
      card('dash.queue',
        h('p', { class: 'big-number' }, String(depth), h('span', { class: 'muted small', text: ` ${t('queue.depth')}` })),
        barChart({ labels: queueStates.map((s) => tOr(`queue.${s}`, s)), values: queueStates.map((s) => num(m.queue[s])), emptyText: empty })),
      card('dash.latency', lineChart({
        labels: m.latency.map((r) => shortDay(r.day)),
        series: [{ name: 'p50', values: m.latency.map((r) => r.p50) }, { name: 'p95', values: m.latency.map((r) => r.p95) }],
        yLabel: t('dash.seconds'), emptyText: empty })),
      card('dash.perCounter',
        stackedBars({ labels: m.counters.map((c) => c.counter), series: m.flagNames.map((f) => ({ name: tOr(`flag.${f}`, f), values: m.counters.map((c) => num(c.flags[f])) })), yLabel: t('dash.pages'), emptyText: t('dash.noFlags') }),
        table([
          { label: t('dash.counter'), cell: (c) => c.counter },
          { label: t('dash.pages'), cell: (c) => String(c.pages), className: 'num' },
          { label: t('dash.quarantineRate'), cell: (c) => formatPercent(c.quarantined, c.pages), className: 'num' },
          { label: t('dash.flagRate'), cell: (c) => formatPercent(c.flagged, c.pages), className: 'num' },
        ], m.counters, { empty })),
      card('dash.confidence', histogram({ bins: m.confidence.bins, counts: m.confidence.counts, yLabel: t('dash.lines'), emptyText: empty })),
      card('dash.retrieval',
        h('p', { class: 'big-number', text: rate === null ? '—' : formatPercent(m.retrieval.opened, m.retrieval.searches) }),
        h('p', { class: 'muted', text: t('dash.retrievalDetail', { opened: m.retrieval.opened, searches: m.retrieval.searches }) })),
      card('dash.replication', replication(m.replication)),
      card('dash.transfer', transfer(m.transfer)),
      card('dash.disk',
        // The bar shows what is not available any more (reserved blocks included): total − free.
        m.disk.total ? meter({ value: m.disk.free ? m.disk.total - m.disk.free : m.disk.used, max: m.disk.total, label: t('dash.diskUse', { used: formatBytes(m.disk.used), total: formatBytes(m.disk.total), free: formatBytes(m.disk.free) }) })
          : h('p', { class: 'muted', text: empty })));
  }

  function replication(r) {
    const kind = { ok: 'ok', behind: 'warn', down: 'bad', not_configured: 'neutral' }[r.state] || 'neutral';
    return h('div', null,
      h('p', null, badge(tOr(`repl.${r.state}`, r.state), kind)),
      r.state !== 'not_configured' && r.backlog !== null ? h('p', { class: 'muted', text: t('dash.backlog', { n: formatNumber(num(r.backlog)) }) }) : null,
      r.lastSync ? h('p', { class: 'muted small', text: t('dash.lastSync', { at: r.lastSync }) }) : null,
      r.error ? h('p', { class: 'small field-problem', text: String(r.error) }) : null,
      // Storage alerts (WAL, Litestream staging, free disk): the server's message, with its code.
      ...r.alerts.map((a) => h('p', { class: 'notice notice-bad small', text: `${tOr(`repl.alert.${a.code}`, a.code)}: ${a.message || ''}` })));
  }

  function transfer(x) {
    const kind = { idle: 'ok', sending: 'info', link_down: 'bad', blocked: 'bad', outside_window: 'neutral', disabled: 'neutral' }[x.state] || 'neutral';
    return h('div', null,
      h('p', null, badge(tOr(`xfer.state.${x.state}`, x.state), kind)),
      x.state !== 'disabled' ? h('p', { class: 'muted', text: t('xfer.waiting', { packages: formatNumber(x.pendingPackages), blobs: formatNumber(x.pendingBlobs) }) }) : null,
      h('p', { class: 'muted', text: t('xfer.counts', { done: formatNumber(x.transferred), rejected: formatNumber(x.rejected) }) }),
      x.lastSuccess ? h('p', { class: 'muted small', text: t('xfer.lastSuccess', { at: formatDateTime(x.lastSuccess) }) }) : null,
      x.windows && x.windows !== 'always' ? h('p', { class: 'muted small', text: t('xfer.windows', { w: x.windows }) }) : null,
      // A block (enrollment problem) stops every transfer until a technician acts: say so loudly.
      x.problem ? h('p', { class: 'notice notice-bad small', text: String(x.problem) })
        : x.error && x.state !== 'idle' ? h('p', { class: 'small field-problem', text: String(x.error) }) : null);
  }

  load();
  const timer = setInterval(load, 60000);
  return { unmount() { clearInterval(timer); if (controller) controller.abort(); } };
}
