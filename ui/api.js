// The one way the UI talks to the backend: JSON over same-origin fetch, the CSRF header on
// state-changing requests, errors as ApiError with the server's bilingual message, and a 401
// anywhere turned into "back to the login screen" (the app registers that handler).

import { zh, en } from './i18n.js';

export const API_BASE = '/api/v1';
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

let csrfToken = null;
let onUnauthorized = null; // (ApiError) => void, set by app.js
let onError = null; // (ApiError) => void: shows a toast unless the caller handles errors itself
let onActivity = null; // () => void: a request went out (idle bookkeeping)

export function setCsrf(token) { csrfToken = token || null; }
export function setHandlers(handlers) {
  ({ onUnauthorized = null, onError = null, onActivity = null } = handlers);
}

export class ApiError extends Error {
  constructor(status, detail, { retryAfter = null } = {}) {
    const d = normaliseDetail(status, detail);
    super(d.message_en || d.code);
    this.name = 'ApiError';
    this.status = status;
    this.code = d.code;
    this.detail = d;
    this.problems = Array.isArray(d.problems) ? d.problems : [];
    this.retryAfter = retryAfter;
  }
}

// FastAPI may also answer with {"detail": "text"} or its own 422 list; make every shape look
// like the documented {"code", "message_zh", "message_en"}.
function normaliseDetail(status, detail) {
  if (detail && typeof detail === 'object' && !Array.isArray(detail)) return { code: `http_${status}`, ...detail };
  if (Array.isArray(detail)) {
    const text = detail.map((p) => [].concat(p.loc || []).slice(1).join('.') + ': ' + (p.msg || '')).join('; ');
    return { code: 'request_invalid', message_zh: `${zh['api.invalid']}${text}`, message_en: `${en['api.invalid']}${text}` };
  }
  if (typeof detail === 'string') return { code: `http_${status}`, message_zh: detail, message_en: detail };
  if (status === 0) {
    return { code: 'network', message_zh: zh['api.network'], message_en: en['api.network'] };
  }
  return { code: `http_${status}`, message_zh: `${zh['api.server']} (${status})`, message_en: `${en['api.server']} (${status})` };
}

/** '/records' + {status: 'draft', before: ''} -> '/api/v1/records?status=draft' (empty values dropped). */
export function apiUrl(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return API_BASE + path + (qs ? `?${qs}` : '');
}

/**
 * api('/records/x', {method, body, query, quiet, signal})
 * Resolves with the parsed JSON (null for 204). Rejects with ApiError. `quiet: true` means the
 * caller shows the error itself (no toast); 401 always goes to the unauthorized handler unless
 * `allow401` is set (login and the initial session probe).
 */
export async function api(path, options = {}) {
  const { method = 'GET', body, query, quiet = false, allow401 = false, signal, retried = false } = options;
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (onActivity) onActivity();

  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    const error = new ApiError(0, null);
    if (!quiet && onError) onError(error);
    throw error;
  }

  if (response.status === 204) return null;
  const data = await readJson(response);
  if (response.ok) return data;

  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'));
  const error = new ApiError(response.status, data && data.detail !== undefined ? data.detail : null, { retryAfter });

  // A stale CSRF token (e.g. the session was renewed in another tab): fetch the current one and
  // try once more.
  if (response.status === 403 && error.code === 'csrf' && !retried) {
    try {
      const session = await api('/auth/session', { quiet: true });
      setCsrf(session.csrf);
      return await api(path, { ...options, retried: true });
    } catch (_) { /* fall through to the original error */ }
  }
  if (response.status === 401 && !allow401) {
    if (onUnauthorized) onUnauthorized(error);
    throw error;
  }
  if (!quiet && onError) onError(error);
  throw error;
}

async function readJson(response) {
  const type = response.headers.get('Content-Type') || '';
  if (!type.includes('json')) return null;
  try { return await response.json(); } catch (_) { return null; }
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date). */
export function parseRetryAfter(value, now = Date.now()) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - now) / 1000));
}
