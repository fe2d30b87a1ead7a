// Client-side checks of the archive metadata, mirroring appliance/archival.py and
// appliance/prefill.py so the clerk sees a problem before saving. The server checks again and
// its 422 answer is authoritative. Pure functions, no DOM (tested under node).

export const FIELDS = [
  'title', 'creator', 'date', 'doc_type', 'classification', 'retention', 'pages', 'matter',
  'applicant', 'id_number', 'phone', 'fonds', 'source', 'archival_code', 'remarks',
];
export const REQUIRED_FOR_CONFIRMATION = ['title', 'date', 'retention', 'classification', 'matter', 'applicant', 'pages', 'fonds'];
export const MAX_LENGTHS = { title: 200, creator: 100, doc_type: 20, matter: 100, applicant: 50, source: 100, remarks: 500 };
export const RETENTIONS = ['Y', 'D30', 'D10'];
export const CLASSIFICATIONS = ['公开', '内部', '秘密'];
const REFUSED_CLASSIFICATIONS = ['机密', '绝密'];
const MAX_PAGES = 9999;
const EARLIEST_DATE = '1949-10-01';

// --- 公民身份号码 (GB 11643-1999): ISO 7064 MOD 11-2 check digit --------------------------------
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = '10X98765432';
const PROVINCES = new Set(['11', '12', '13', '14', '15', '21', '22', '23', '31', '32', '33', '34', '35', '36', '37', '41',
  '42', '43', '44', '45', '46', '50', '51', '52', '53', '54', '61', '62', '63', '64', '65', '71', '81', '82', '83']);

/** The 18th character for the first 17 digits: sum(d_i * w_i) mod 11 -> '10X98765432'. */
export function idCheckDigit(first17) {
  if (!/^[0-9]{17}$/.test(first17)) throw new Error('expected 17 ASCII digits');
  let total = 0;
  for (let i = 0; i < 17; i += 1) total += Number(first17[i]) * ID_WEIGHTS[i];
  return ID_CHECK[total % 11];
}

/** Full-width to ASCII, spaces and hyphens removed, 'x' upper-cased (as normalise_id_number). */
export function normaliseIdNumber(value) {
  return String(value).normalize('NFKC').replace(/[\s-]+/g, '').toUpperCase();
}

/** Why an ID number is invalid ('format' | 'region' | 'birth_date' | 'check_digit'), or null. */
export function idNumberProblem(value, today = new Date()) {
  const n = normaliseIdNumber(value);
  if (!/^[0-9]{17}[0-9X]$/.test(n)) return 'format';
  if (!PROVINCES.has(n.slice(0, 2))) return 'region';
  const birth = isoDate(Number(n.slice(6, 10)), Number(n.slice(10, 12)), Number(n.slice(12, 14)));
  if (!birth || birth < '1900-01-01' || birth > localIso(today)) return 'birth_date';
  if (idCheckDigit(n.slice(0, 17)) !== n[17]) return 'check_digit';
  return null;
}

// --- dates -----------------------------------------------------------------------------------------
function isoDate(y, m, d) {
  const dt = new Date(Date.UTC(y, m - 1, d));
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== m - 1 || dt.getUTCDate() !== d) return null;
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

export function localIso(date) {
  return isoDate(date.getFullYear(), date.getMonth() + 1, date.getDate());
}

/** '2026-03-05', '2026/3/5', '2026.3.5' or '2026年3月5日' -> '2026-03-05'; null if not a real date. */
export function parseDate(value) {
  const text = String(value).normalize('NFKC').trim();
  let m = /^([0-9]{4})\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*[日号]$/.exec(text);
  if (!m) m = /^([0-9]{4})([-./])([0-9]{1,2})\2([0-9]{1,2})$/.exec(text);
  if (!m) return null;
  const [y, mo, d] = m.length === 5 ? [m[1], m[3], m[4]] : [m[1], m[2], m[3]];
  return isoDate(Number(y), Number(mo), Number(d));
}

// --- phones ----------------------------------------------------------------------------------------
/** A mobile as 11 digits or a landline as 'area-local'; null if not a mainland number. */
export function normalisePhone(value) {
  let text = String(value).normalize('NFKC').trim().replace(/^(?:\+|00)86[\s-]*/, '');
  const parts = text.split(/[\s\-()]+/).filter(Boolean);
  if (!parts.length || !parts.every((p) => /^[0-9]+$/.test(p))) return null;
  const digits = parts.join('');
  if (/^1[3-9][0-9]{9}$/.test(digits)) return digits;
  if (!digits.startsWith('0')) return null;
  let area;
  if (parts.length >= 2 && /^0[0-9]{2,3}$/.test(parts[0])) area = parts[0];
  else area = digits.startsWith('010') || digits.startsWith('02') ? digits.slice(0, 3) : digits.slice(0, 4);
  text = digits.slice(area.length);
  return text.length >= 7 && text.length <= 8 ? `${area}-${text}` : null;
}

// --- the whole form ----------------------------------------------------------------------------------
/**
 * Problems of a metadata form: [{field, code}] with codes as in archival.py (the UI translates
 * them as `problem.<field>.<code>` or `problem.<code>`). `values` maps field -> string (from
 * inputs; '' means empty). `forConfirmation` also requires REQUIRED_FOR_CONFIRMATION.
 */
export function validateMetadata(values, { forConfirmation = false, today = new Date() } = {}) {
  const out = [];
  const get = (name) => {
    const v = values[name];
    return v === null || v === undefined ? '' : String(v).trim();
  };
  const add = (field, code, extra = {}) => out.push({ field, code, ...extra });
  if (forConfirmation) for (const name of REQUIRED_FOR_CONFIRMATION) if (!get(name)) add(name, 'required');
  for (const [name, limit] of Object.entries(MAX_LENGTHS)) {
    const v = get(name);
    if ([...v].length > limit) add(name, 'too_long', { limit });
    // eslint-disable-next-line no-control-regex
    else if (/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]/.test(v)) add(name, 'control_chars');
  }
  const cls = get('classification');
  if (cls && !CLASSIFICATIONS.includes(cls)) add('classification', REFUSED_CLASSIFICATIONS.includes(cls) ? 'classified_refused' : 'invalid_choice');
  const retention = get('retention');
  if (retention && !RETENTIONS.includes(retention)) add('retention', 'invalid_choice');
  const pages = get('pages');
  if (pages && !(/^[0-9]+$/.test(pages) && Number(pages) >= 1 && Number(pages) <= MAX_PAGES)) add('pages', 'range');
  const date = get('date');
  if (date) {
    const iso = parseDate(date);
    if (!iso) add('date', 'invalid_format');
    else if (iso > localIso(today)) add('date', 'future');
    else if (iso < EARLIEST_DATE) add('date', 'too_early');
  }
  const id = get('id_number');
  if (id) {
    const problem = idNumberProblem(id, today);
    if (problem) add('id_number', problem);
  }
  const phone = get('phone');
  if (phone && !normalisePhone(phone)) add('phone', 'invalid_format');
  const fonds = get('fonds').normalize('NFKC').toUpperCase();
  if (fonds && !/^[0-9A-Z]{1,8}$/.test(fonds)) add('fonds', 'invalid_format');
  return out;
}

/** The value to send for a field: '' -> null, pages as an integer, date/ID/phone normalised. */
export function toApiValue(name, raw) {
  const text = raw === null || raw === undefined ? '' : String(raw).trim();
  if (!text) return null;
  if (name === 'pages') return /^[0-9]+$/.test(text) ? Number(text) : text;
  if (name === 'date') return parseDate(text) || text;
  if (name === 'id_number') return normaliseIdNumber(text);
  if (name === 'phone') return normalisePhone(text) || text;
  if (name === 'fonds') return text.normalize('NFKC').toUpperCase();
  return text;
}
