// Small SVG charts: bars, lines, a histogram, stacked bars, and a meter. Each returns a
// <figure> holding a responsive <svg> (viewBox units; CSS scales it to the column width) and
// an HTML legend. Colours come from CSS classes (.series-0 … .series-7) so the CSP needs no
// inline styles. Every bar/point carries a <title> tooltip with its exact value.

import { h, s } from './dom.js';

const W = 480;
const H = 230;
const M = { top: 14, right: 14, bottom: 36, left: 52 };

/** About `count` round tick values covering [min, max] (1, 2, 2.5 or 5 × 10^n steps). */
export function niceTicks(min, max, count = 5, integer = false) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max === min) max = min + 1;
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((st) => st >= raw) || 10 * mag;
  // Counts (pages, files) get whole-number ticks: no "0.25 pages".
  if (integer) step = step < 1 ? 1 : (Number.isInteger(step) ? step : Math.ceil(step));
  const first = Math.floor(min / step) * step;
  const ticks = [];
  for (let v = first; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

const defaultFormat = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 2 : 1));

function figure(svg, legendItems, caption) {
  return h('figure', { class: 'chart' },
    caption ? h('figcaption', { class: 'chart-caption', text: caption }) : null,
    svg,
    legendItems && legendItems.length > 1
      ? h('div', { class: 'chart-legend' }, legendItems.map((name, i) => h('span', { class: 'legend-item' },
        h('span', { class: `legend-swatch series-${i % 8}` }), h('span', { text: name }))))
      : null);
}

/** The common frame: y grid + axis labels, x labels (thinned to fit), y-axis title. */
function frame({ labels, yMax, yMin = 0, format = defaultFormat, yLabel, width = W, height = H, ariaLabel }) {
  const svg = s('svg', { class: 'chart-svg', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': ariaLabel || yLabel || '' });
  const ticks = niceTicks(yMin, yMax, 4, Number.isInteger(yMin) && Number.isInteger(yMax));
  const top = ticks[ticks.length - 1];
  const bottom = ticks[0];
  const plotW = width - M.left - M.right;
  const plotH = height - M.top - M.bottom;
  const y = (v) => M.top + plotH - ((v - bottom) / (top - bottom || 1)) * plotH;
  for (const tick of ticks) {
    svg.appendChild(s('line', { class: 'chart-grid', x1: M.left, x2: width - M.right, y1: y(tick), y2: y(tick) }));
    svg.appendChild(s('text', { class: 'chart-tick', x: M.left - 6, y: y(tick) + 4, 'text-anchor': 'end', text: format(tick) }));
  }
  svg.appendChild(s('line', { class: 'chart-axis', x1: M.left, x2: width - M.right, y1: y(bottom), y2: y(bottom) }));
  if (yLabel) {
    svg.appendChild(s('text', { class: 'chart-axis-label', x: 12, y: M.top + plotH / 2, 'text-anchor': 'middle',
      transform: `rotate(-90 12 ${M.top + plotH / 2})`, text: yLabel }));
  }
  const n = labels.length;
  const band = plotW / Math.max(1, n);
  const every = Math.max(1, Math.ceil(n / Math.floor(plotW / 56)));
  labels.forEach((label, i) => {
    if (i % every !== 0) return;
    svg.appendChild(s('text', { class: 'chart-tick', x: M.left + band * (i + 0.5), y: height - M.bottom + 16, 'text-anchor': 'middle', text: label }));
  });
  return { svg, y, band, plotW, plotH, x0: M.left, base: y(bottom) };
}

function emptyChart(text, width = W, height = 120) {
  return s('svg', { class: 'chart-svg', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': text || '' },
    s('text', { class: 'chart-empty', x: width / 2, y: height / 2, 'text-anchor': 'middle', text: text || '—' }));
}

const finite = (v) => typeof v === 'number' && Number.isFinite(v);

/** barChart({labels, values, yLabel, format, caption, emptyText, highlight: index}) */
export function barChart({ labels, values, yLabel, format = defaultFormat, caption, emptyText, highlight = -1 }) {
  if (!values.length || !values.some(finite)) return figure(emptyChart(emptyText), null, caption);
  const f = frame({ labels, yMax: Math.max(...values.filter(finite), 0), yLabel, format, ariaLabel: caption });
  values.forEach((v, i) => {
    if (!finite(v)) return;
    const x = f.x0 + f.band * i + f.band * 0.15;
    f.svg.appendChild(s('rect', { class: `chart-bar series-0${i === highlight ? ' highlight' : ''}`, x, y: f.y(v), width: Math.max(1, f.band * 0.7), height: Math.max(0, f.base - f.y(v)) },
      s('title', { text: `${labels[i]}: ${format(v)}` })));
  });
  return figure(f.svg, null, caption);
}

/** lineChart({labels, series: [{name, values}], yLabel, format, caption, emptyText}); null = gap. */
export function lineChart({ labels, series, yLabel, format = defaultFormat, caption, emptyText }) {
  const all = series.flatMap((sr) => sr.values).filter(finite);
  if (!labels.length || !all.length) return figure(emptyChart(emptyText), null, caption);
  const f = frame({ labels, yMax: Math.max(...all, 0), yLabel, format, ariaLabel: caption });
  series.forEach((sr, k) => {
    const cls = `series-${k % 8}`;
    let d = '';
    sr.values.forEach((v, i) => {
      if (!finite(v)) { d += ' '; return; }
      const x = f.x0 + f.band * (i + 0.5);
      d += `${/[\d]$/.test(d) ? 'L' : 'M'}${x.toFixed(1)},${f.y(v).toFixed(1)}`;
    });
    f.svg.appendChild(s('path', { class: `chart-line ${cls}`, d: d.replace(/\s+/g, ' ').trim() }));
    sr.values.forEach((v, i) => {
      if (!finite(v)) return;
      f.svg.appendChild(s('circle', { class: `chart-dot ${cls}`, cx: f.x0 + f.band * (i + 0.5), cy: f.y(v), r: 3.5 },
        s('title', { text: `${sr.name ? `${sr.name} ` : ''}${labels[i]}: ${format(v)}` })));
    });
  });
  return figure(f.svg, series.map((sr) => sr.name), caption);
}

/**
 * histogram({bins, counts}): `bins` are the edges (counts.length + 1 values) or the lower
 * edges (counts.length values, equal width assumed).
 */
export function histogram({ bins, counts, yLabel, caption, emptyText, format = defaultFormat, edgeFormat = (v) => v.toFixed(1) }) {
  if (!Array.isArray(counts) || !counts.length || !counts.some((c) => c > 0)) return figure(emptyChart(emptyText), null, caption);
  let edges = Array.isArray(bins) ? bins.slice() : [];
  if (edges.length === counts.length) {
    const step = edges.length > 1 ? edges[1] - edges[0] : 1;
    edges.push(edges[edges.length - 1] + step);
  }
  if (edges.length !== counts.length + 1) edges = counts.map((_, i) => i).concat(counts.length);
  const labels = counts.map(() => '');
  const f = frame({ labels, yMax: Math.max(...counts), yLabel, format, ariaLabel: caption });
  counts.forEach((c, i) => {
    const x = f.x0 + f.band * i;
    f.svg.appendChild(s('rect', { class: 'chart-bar series-1', x: x + 0.5, y: f.y(c), width: Math.max(1, f.band - 1), height: Math.max(0, f.base - f.y(c)) },
      s('title', { text: `${edgeFormat(edges[i])}–${edgeFormat(edges[i + 1])}: ${format(c)}` })));
  });
  const every = Math.max(1, Math.ceil(edges.length / 12));
  edges.forEach((e, i) => {
    if (i % every !== 0 && i !== edges.length - 1) return;
    f.svg.appendChild(s('text', { class: 'chart-tick', x: f.x0 + f.band * i, y: H - M.bottom + 16, 'text-anchor': 'middle', text: edgeFormat(e) }));
  });
  return figure(f.svg, null, caption);
}

/** stackedBars({labels, series: [{name, values}]}): one bar per label, series stacked. */
export function stackedBars({ labels, series, yLabel, format = defaultFormat, caption, emptyText }) {
  const totals = labels.map((_, i) => series.reduce((sum, sr) => sum + (finite(sr.values[i]) ? sr.values[i] : 0), 0));
  if (!labels.length || !totals.some((v) => v > 0)) return figure(emptyChart(emptyText), null, caption);
  const f = frame({ labels, yMax: Math.max(...totals), yLabel, format, ariaLabel: caption });
  labels.forEach((label, i) => {
    let acc = 0;
    series.forEach((sr, k) => {
      const v = finite(sr.values[i]) ? sr.values[i] : 0;
      if (v <= 0) return;
      const yTop = f.y(acc + v);
      const yBottom = f.y(acc);
      f.svg.appendChild(s('rect', { class: `chart-bar series-${k % 8}`, x: f.x0 + f.band * i + f.band * 0.2, y: yTop, width: Math.max(1, f.band * 0.6), height: Math.max(0, yBottom - yTop) },
        s('title', { text: `${label} · ${sr.name}: ${format(v)}` })));
      acc += v;
    });
  });
  return figure(f.svg, series.map((sr) => sr.name), caption);
}

/** meter({value, max, label, warnAt, dangerAt}): a horizontal bar (e.g. disk use). */
export function meter({ value, max, label, warnAt = 0.8, dangerAt = 0.92 }) {
  const share = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const level = share >= dangerAt ? 'danger' : share >= warnAt ? 'warn' : 'ok';
  const svg = s('svg', { class: 'meter-svg', viewBox: '0 0 600 24', preserveAspectRatio: 'none', role: 'img', 'aria-label': label || '' },
    s('rect', { class: 'meter-track', x: 0, y: 0, width: 600, height: 24, rx: 4 }),
    s('rect', { class: `meter-fill meter-${level}`, x: 0, y: 0, width: 600 * share, height: 24, rx: 4 }, s('title', { text: label || '' })));
  return h('div', { class: 'meter' }, svg, label ? h('div', { class: 'meter-label', text: label }) : null);
}
