// The DA/T 46 metadata form of a record. OCR suggestions fill empty fields and stay marked
// "OCR 建议" until the clerk edits or accepts them; a pending suggestion is never saved.
// Client-side checks mirror archival.py; the server's 422 problems are shown the same way.

import { h, replace } from '../dom.js';
import { t, tOr, getLang } from '../i18n.js';
import { FIELDS, RETENTIONS, CLASSIFICATIONS, MAX_LENGTHS, REQUIRED_FOR_CONFIRMATION, validateMetadata, toApiValue, parseDate, idNumberProblem } from '../validate.js';

const WIDE = new Set(['title', 'matter', 'remarks', 'archival_code']);
// Filled by the box, never by hand (record_metadata._LOCKED): 档号 on confirmation, 页数 from
// the scan, 全宗号 from the hall's settings. Shown read-only and never sent.
export const LOCKED = new Set(['archival_code', 'pages', 'fonds']);
const DOC_TYPES = ['申请书', '申请表', '证明', '通知', '决定', '报告', '请示', '批复', '函', '合同', '协议', '身份证明', '其他'];

/** Field label in the current language (Chinese labels come from the API's field_labels). */
export function fieldLabel(name, fieldLabels) {
  const zh = (fieldLabels && fieldLabels[name]) || tOr(`field.${name}`, name);
  return getLang() === 'zh' ? zh : tOr(`field.${name}`, name);
}

export function createForm(record, { readOnly, forConfirmation = false, onJumpToLine = () => {}, onChange = () => {} }) {
  const labels = record.field_labels || {};
  const suggestions = record.suggestions || {};
  let baseline = { ...(record.metadata || {}) };
  const rows = {}; // name -> {input, badge, problem, suggested}

  function makeInput(name) {
    const common = { id: `f-${name}`, name, disabled: readOnly, 'aria-describedby': `p-${name}` };
    if (name === 'retention') {
      return h('select', common, h('option', { value: '', text: t('form.choose') }),
        RETENTIONS.map((code) => h('option', { value: code, text: `${t(`retention.${code}`)} (${code})` })));
    }
    if (name === 'classification') {
      return h('select', common, h('option', { value: '', text: t('form.choose') }),
        CLASSIFICATIONS.map((c) => h('option', { value: c, text: t(`classification.${c}`) })));
    }
    if (LOCKED.has(name)) {
      const placeholder = name === 'archival_code' ? t('form.codeAssigned') : t('form.systemFilled');
      return h('input', { ...common, readonly: true, disabled: true, class: 'mono', placeholder, title: t('form.lockedHint') });
    }
    const attrs = { ...common, type: 'text', autocomplete: 'off', maxlength: MAX_LENGTHS[name] || null };
    if (name === 'date') Object.assign(attrs, { placeholder: 'YYYY-MM-DD', inputmode: 'numeric' });
    if (name === 'id_number') Object.assign(attrs, { class: 'mono', maxlength: 22, spellcheck: 'false' });
    if (name === 'phone') Object.assign(attrs, { type: 'tel', class: 'mono' });
    if (name === 'doc_type') attrs.list = 'doc-types';
    return h('input', attrs);
  }

  const valueOf = (v) => (v === null || v === undefined ? '' : String(v));

  function buildRow(name) {
    const input = makeInput(name);
    const required = REQUIRED_FOR_CONFIRMATION.includes(name);
    const badge = h('span', { class: 'suggestion', hidden: true });
    const hint = h('span', { class: 'field-hint', id: `h-${name}` });
    const problem = h('span', { class: 'field-problem', id: `p-${name}`, role: 'alert' });
    const row = { input, badge, hint, problem, suggested: false };
    rows[name] = row;
    input.addEventListener('input', () => {
      if (row.suggested) setSuggested(name, false);
      clearProblem(name);
      if (name === 'id_number') idHint();
      onChange();
    });
    input.addEventListener('change', () => onChange());
    if (name === 'date') input.addEventListener('blur', () => { const iso = parseDate(input.value); if (iso) input.value = iso; });
    return h('div', { class: WIDE.has(name) ? 'form-row wide' : 'form-row' },
      h('label', { for: `f-${name}`, class: 'field-label' }, fieldLabel(name, labels), required ? h('span', { class: 'req', title: t('form.requiredHint'), text: ' *' }) : null),
      input, badge, hint, problem);
  }

  function setSuggested(name, on) {
    const row = rows[name];
    const sug = suggestions[name];
    row.suggested = on;
    row.input.classList.toggle('is-suggested', on);
    row.badge.hidden = !on;
    if (!on || !sug) { replace(row.badge); return; }
    const pct = typeof sug.confidence === 'number' ? ` ${Math.round(sug.confidence * 100)}%` : '';
    replace(row.badge,
      h('button', { type: 'button', class: 'suggestion-tag', title: t('form.showSource'),
        onClick: () => { if (sug.line !== undefined && sug.line !== null) onJumpToLine(sug.line); } },
      `${t('form.ocrSuggestion')}${pct}`),
      h('button', { type: 'button', class: 'btn btn-small', text: t('form.accept'), onClick: () => { setSuggested(name, false); onChange(); } }));
  }

  function fill(meta) {
    for (const name of FIELDS) {
      const row = rows[name];
      const current = valueOf(meta[name]);
      row.input.value = current;
      setSuggested(name, false);
      if (name === 'pages' && !current) row.input.value = valueOf(record.page_count);
      if (!current && !readOnly && !LOCKED.has(name) && suggestions[name] && valueOf(suggestions[name].value)) {
        row.input.value = valueOf(suggestions[name].value);
        setSuggested(name, true);
      }
    }
    idHint();
  }

  function idHint() {
    const row = rows.id_number;
    const v = row.input.value.trim();
    const ok = v && !idNumberProblem(v);
    row.hint.textContent = ok ? t('form.idOk') : '';
    row.hint.className = ok ? 'field-hint ok' : 'field-hint';
  }

  const datalist = h('datalist', { id: 'doc-types' }, DOC_TYPES.map((d) => h('option', { value: d })));
  const pending = h('p', { class: 'pending-note', hidden: true });
  const acceptAllBtn = h('button', { type: 'button', class: 'btn btn-small', text: t('form.acceptAll'), onClick: () => { acceptAll(); onChange(); } });
  const el = h('form', { class: 'meta-form', novalidate: true, onSubmit: (e) => e.preventDefault() },
    h('div', { class: 'form-grid' }, FIELDS.map(buildRow)),
    datalist,
    h('div', { class: 'pending-row' }, pending, acceptAllBtn));

  // --- state
  function current() {
    const out = {};
    for (const name of FIELDS) out[name] = rows[name].input.value;
    return out;
  }

  /** Fields whose value differs from the stored metadata and is not a pending suggestion. */
  function changes() {
    const out = {};
    for (const name of FIELDS) {
      if (LOCKED.has(name) || rows[name].suggested) continue;
      const v = toApiValue(name, rows[name].input.value);
      const before = baseline[name] === undefined ? null : baseline[name];
      if (valueOf(v) !== valueOf(before)) out[name] = v;
    }
    return out;
  }

  /** The values the record would hold after saving (pending suggestions excluded). */
  function effective() {
    const out = {};
    for (const name of FIELDS) out[name] = rows[name].suggested ? valueOf(baseline[name]) : rows[name].input.value;
    return out;
  }

  function pendingNames() { return FIELDS.filter((n) => rows[n].suggested); }

  function acceptAll() { pendingNames().forEach((n) => setSuggested(n, false)); }

  function refreshPending() {
    const n = pendingNames().length;
    pending.hidden = n === 0 || readOnly;
    acceptAllBtn.hidden = n === 0 || readOnly;
    pending.textContent = t('form.pending', { n });
  }

  function clearProblem(name) {
    rows[name].problem.textContent = '';
    rows[name].input.removeAttribute('aria-invalid');
  }

  /** Show problems [{field, code, message_zh?, message_en?}] next to their fields. */
  function showProblems(problems) {
    FIELDS.forEach(clearProblem);
    const others = [];
    for (const p of problems) {
      const row = rows[p.field];
      const text = p.message_zh || p.message_en ? (getLang() === 'en' ? p.message_en || p.message_zh : p.message_zh || p.message_en)
        : tOr(`problem.${p.field}.${p.code}`, tOr(`problem.${p.code}`, p.code)).replace('{limit}', String(p.limit || ''));
      if (!row) { others.push(text); continue; }
      row.problem.textContent = row.problem.textContent ? `${row.problem.textContent}；${text}` : text;
      row.input.setAttribute('aria-invalid', 'true');
    }
    const first = problems.map((p) => rows[p.field]).find(Boolean);
    if (first) first.input.focus();
    return others;
  }

  /**
   * Client-side check; shows and returns the problems. An empty locked field is not reported as
   * missing: the server fills it (page count, the hall's fonds) and checks it itself.
   * A confirmed record stays editable but must keep every required field.
   */
  function check(confirming) {
    const problems = validateMetadata(effective(), { forConfirmation: confirming || forConfirmation })
      .filter((p) => !(LOCKED.has(p.field) && p.code === 'required'));
    showProblems(problems);
    return problems;
  }

  fill(baseline);
  refreshPending();
  return {
    el,
    changes,
    check,
    showProblems,
    pendingNames,
    acceptAll,
    refreshPending,
    isDirty: () => Object.keys(changes()).length > 0,
    /** After a save: the server's (normalised) metadata becomes the new baseline. */
    setSaved(meta) { baseline = { ...(meta || {}) }; fill(baseline); refreshPending(); },
    setArchivalCode(code) { rows.archival_code.input.value = valueOf(code); },
    values: current,
  };
}
