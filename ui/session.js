// The logged-in user and what they may do. Filled from POST /auth/login or GET /auth/session.

import { api, setCsrf } from './api.js';

const state = { user: null, idleTimeoutS: null, hallName: null };

export function currentUser() { return state.user; }
export function hallName() { return state.hallName; }
export function idleTimeoutS() { return state.idleTimeoutS; }

/** Does the current user hold `permission`? (The server checks again on every request.) */
export function can(permission) {
  return Boolean(state.user && Array.isArray(state.user.permissions) && state.user.permissions.includes(permission));
}

export function setSession(data) {
  state.user = data && data.user ? data.user : null;
  if (data && 'csrf' in data) setCsrf(data.csrf);
  if (data && data.idle_timeout_s) state.idleTimeoutS = data.idle_timeout_s;
  // hall_name is not in the documented contract yet; accept a few plausible places.
  const name = data && (data.hall_name || (data.hall && data.hall.name));
  if (name) state.hallName = String(name);
}

export function clearSession() {
  state.user = null;
  setCsrf(null);
}

/** GET /auth/session; resolves to true when logged in, false on 401. */
export async function loadSession() {
  try {
    setSession(await api('/auth/session', { quiet: true, allow401: true }));
    return true;
  } catch (err) {
    if (err && err.status === 401) { clearSession(); return false; }
    throw err;
  }
}

/** The screen a user lands on after login: clerks the intake, technicians the device page. */
export function defaultRoute() {
  if (can('intake.view') && can('records.read')) return '#/intake';
  if (can('search')) return '#/search';
  if (can('device.view')) return '#/device';
  if (can('dashboard.view')) return '#/dashboard';
  if (can('queue.view')) return '#/intake';
  if (can('users.manage')) return '#/users';
  return '#/users';
}
