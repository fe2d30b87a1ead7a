// Formatting of times, sizes and numbers. Pure functions (usable under node).

/** A Date from epoch seconds (the API's usual form), epoch milliseconds or an ISO string. */
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  if (value instanceof Date) return value;
  if (typeof value === 'number') return new Date(value < 1e11 ? value * 1000 : value);
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

const pad = (n) => String(n).padStart(2, '0');

/** '2026-11-21 09:05:03' in local time ('' for nothing). */
export function formatDateTime(value) {
  const d = toDate(value);
  if (!d) return '';
  return `${formatDate(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDate(value) {
  const d = toDate(value);
  if (!d) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function formatTime(value) {
  const d = toDate(value);
  if (!d) return '';
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Time of day for today's items, the full date-time otherwise. */
export function formatWhen(value, now = new Date()) {
  const d = toDate(value);
  if (!d) return '';
  return formatDate(d) === formatDate(now) ? formatTime(d) : formatDateTime(d);
}

/** 1536 -> '1.5 KiB', 3.2e9 -> '3.0 GiB'. */
export function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatPercent(part, whole, digits = 1) {
  if (!whole) return '—';
  return `${((100 * part) / whole).toFixed(digits)}%`;
}

export function formatNumber(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** Operational detail objects ({"page": 2, "kind": "cleaned"}) as 'page=2 kind=cleaned'. */
export function formatDetail(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join('  ');
}

/** A short, still-unique-looking form of a long id for tables ('3f9c…a21b'). */
export function shortId(id) {
  const text = String(id || '');
  return text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-4)}` : text;
}
