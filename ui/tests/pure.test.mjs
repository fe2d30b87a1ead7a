// Tests of the UI's pure functions (no browser needed): node --test ui/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { idCheckDigit, idNumberProblem, parseDate, normalisePhone, validateMetadata, toApiValue } from '../validate.js';
import { niceTicks } from '../charts.js';
import { normaliseCombo, eventCombo } from '../keys.js';
import { parseRetryAfter, apiUrl } from '../api.js';
import { formatBytes, formatDetail, toDate } from '../format.js';
import { mapDashboard } from '../screens/dashboard.js';
import { normaliseFlags, applyUpdate } from '../screens/intake-card.js';
import { zh, en } from '../i18n.js';
import { safeApiPath } from '../dom.js';

test('GB 11643 check digit (ISO 7064 MOD 11-2)', () => {
  assert.equal(idCheckDigit('11010519491231002'), 'X');
  assert.equal(idNumberProblem('11010519491231002X'), null);
  assert.equal(idNumberProblem('11010519491231002x'), null);
  assert.equal(idNumberProblem('110105 19491231 002X'), null);
  assert.equal(idNumberProblem('110105194912310021'), 'check_digit');
  assert.equal(idNumberProblem('990105194912310021'), 'region');
  assert.equal(idNumberProblem('11010519491331002X'), 'birth_date');
  assert.equal(idNumberProblem('1101051949'), 'format');
});

test('dates and phones as archival.py reads them', () => {
  assert.equal(parseDate('2026年3月5日'), '2026-03-05');
  assert.equal(parseDate('2026/3/5'), '2026-03-05');
  assert.equal(parseDate('2026-02-30'), null);
  assert.equal(normalisePhone('+86 138 1234 5678'), '13812345678');
  assert.equal(normalisePhone('0371-12345678'), '0371-12345678');
  assert.equal(normalisePhone('12345'), null);
});

test('metadata validation', () => {
  const today = new Date(2026, 10, 21);
  const codes = validateMetadata({ date: '2027-01-01', pages: '0', fonds: 'a-b', classification: '机密' }, { forConfirmation: true, today })
    .map((p) => `${p.field}.${p.code}`);
  for (const c of ['title.required', 'retention.required', 'pages.range', 'date.future', 'fonds.invalid_format', 'classification.classified_refused']) {
    assert.ok(codes.includes(c), c);
  }
  assert.deepEqual(validateMetadata({ title: 'x', date: '2026-01-02', retention: 'D30', classification: '内部', matter: 'm', applicant: 'a', pages: '3', fonds: '0042' }, { forConfirmation: true, today }), []);
  assert.equal(toApiValue('pages', ' 3 '), 3);
  assert.equal(toApiValue('title', '  '), null);
  assert.equal(toApiValue('date', '2026年3月5日'), '2026-03-05');
});

test('chart ticks', () => {
  assert.deepEqual(niceTicks(0, 80, 4), [0, 20, 40, 60, 80]);
  assert.deepEqual(niceTicks(0, 7, 4), [0, 2, 4, 6, 8]);
});

test('shortcut combos', () => {
  assert.equal(normaliseCombo('Ctrl+S'), 'ctrl+s');
  assert.equal(normaliseCombo('g  i'), 'g i');
  assert.equal(eventCombo({ key: 's', ctrlKey: true }), 'ctrl+s');
  assert.equal(eventCombo({ key: '?', shiftKey: true }), '?');
  assert.equal(eventCombo({ key: 'Enter', ctrlKey: true }), 'ctrl+enter');
  assert.equal(eventCombo({ key: '=' }), '+');
});

test('api helpers', () => {
  assert.equal(apiUrl('/records', { status: 'draft', before: '', x: null }), '/api/v1/records?status=draft');
  assert.equal(parseRetryAfter('12'), 12);
  assert.equal(safeApiPath('/api/v1/jobs/1/preview'), '/api/v1/jobs/1/preview');
  assert.equal(safeApiPath('//evil.example/x'), null);
  assert.equal(safeApiPath('javascript:alert(1)'), null);
});

test('formatting', () => {
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatDetail({ page: 2, kind: 'cleaned', none: null }), 'page=2  kind=cleaned');
  assert.equal(toDate(1700000000).getTime(), 1700000000000);
});

test('dashboard mapping', () => {
  const now = new Date(2026, 10, 21, 10);
  const m = mapDashboard({ pages_per_hour: [{ hour: '2026-11-21T09', pages: 5 }, { hour: '2026-11-20T09', pages: 7 }], replication: {} }, now);
  assert.equal(m.hours[9], 5);
  assert.equal(m.replication.state, 'not_configured');
  assert.deepEqual(mapDashboard(null, now).counters, []);
  const x = mapDashboard({ transfer: { state: 'blocked', pending_packages: 3, pending_blobs: 9, transferred: 4, rejected: 1, problem: 'enrollment problem: device revoked' } }, now).transfer;
  assert.deepEqual([x.state, x.pendingPackages, x.pendingBlobs, x.transferred, x.rejected], ['blocked', 3, 9, 4, 1]);
  assert.equal(x.problem, 'enrollment problem: device revoked');
  assert.equal(mapDashboard(null, now).transfer.state, 'disabled');
});

test('intake flags: flat (SSE) or per page (GET /queue)', () => {
  assert.deepEqual(normaliseFlags(['blurry']), { all: ['blurry'], perPage: null });
  assert.deepEqual(normaliseFlags([['blurry'], ['seal']]).all, ['blurry', 'seal']);
  const job = applyUpdate({ id: 'j' }, 'job.preview', { flags: ['skewed'], thumbnail: '/api/v1/jobs/j/preview' });
  assert.equal(job.rescan, false);
  assert.equal(job.state, 'processing');
  applyUpdate(job, 'job.duplicate', { duplicate_of: 'r' });
  assert.equal(job.state, 'duplicate');
  assert.equal(job.rescan, true);
});

test('every string has both languages', () => {
  for (const key of Object.keys(zh)) {
    assert.ok(zh[key] && en[key], key);
    const params = (s) => (s.match(/\{\w+\}/g) || []).sort().join();
    assert.equal(params(zh[key]), params(en[key]), `parameters of ${key}`);
  }
});
