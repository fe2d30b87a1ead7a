// The single-page app: header, hash router (#/path?query), permission gate per screen, the
// 401 → login redirect, language switch and the global shortcuts. Each screen module exports
// mount(container, ctx) returning an optional {unmount(), update(ctx), isDirty()} object.

import { h, replace } from './dom.js';
import { api, setHandlers } from './api.js';
import { t, tOr, initLang, getLang, setLang, serverMessage } from './i18n.js';
import { can, currentUser, hallName, loadSession, clearSession, defaultRoute } from './session.js';
import { toast } from './widgets.js';
import * as keys from './keys.js';
import { showHelp } from './help.js';
import * as login from './screens/login.js';
import * as intake from './screens/intake.js';
import * as record from './screens/record.js';
import * as search from './screens/search.js';
import * as dashboard from './screens/dashboard.js';
import * as audit from './screens/audit.js';
import * as device from './screens/device.js';
import * as users from './screens/users.js';

// path pattern -> screen, permission needed (null: any logged-in user), nav label key
const ROUTES = [
  { name: 'login', re: /^login$/, screen: login, public: true },
  { name: 'intake', re: /^intake$/, screen: intake, perm: 'queue.view', nav: 'nav.intake' },
  { name: 'record', re: /^records\/([^/]+)$/, screen: record, perm: 'records.read' },
  { name: 'search', re: /^search$/, screen: search, perm: 'search', nav: 'nav.search' },
  { name: 'dashboard', re: /^dashboard$/, screen: dashboard, perm: 'dashboard.view', nav: 'nav.dashboard' },
  { name: 'audit', re: /^audit$/, screen: audit, perm: 'audit.view', nav: 'nav.audit' },
  { name: 'device', re: /^device$/, screen: device, perm: 'device.view', nav: 'nav.device' },
  { name: 'users', re: /^users$/, screen: users, perm: null, nav: 'nav.users' },
];

const els = {};
let current = null; // {route, path, handle}
let sessionChecked = false;
let ignoreHash = null;

/** '#/records/x?page=2' -> {path: 'records/x', query: URLSearchParams} */
export function parseHash(hash) {
  const raw = (hash || '').replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = decodeURIComponent(q >= 0 ? raw.slice(0, q) : raw).replace(/\/+$/, '');
  return { path, query: new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '') };
}

/** May the current user open `hash`? (Used after login to follow ?next= only where allowed.) */
export function canVisit(hash) {
  const { path } = parseHash(hash);
  const found = ROUTES.find((r) => r.re.test(path));
  return Boolean(found && !found.public && (found.perm === null || can(found.perm)));
}

export function navigate(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function goLogin(reason) {
  const { path } = parseHash(location.hash);
  // After a timeout the same person logs in again and continues where they were; after a
  // deliberate logout the next user starts on their own landing screen.
  const next = reason !== 'loggedout' && path && path !== 'login' ? location.hash : '';
  clearSession();
  const params = new URLSearchParams();
  if (reason) params.set(reason, '1');
  if (next) params.set('next', next);
  forceNavigate(`#/login?${params}`);
}

function forceNavigate(hash) {
  if (current && current.handle && current.handle.isDirty) current.handle.isDirty = () => false;
  navigate(hash);
}

// --- header -------------------------------------------------------------------------------------
function renderHeader() {
  applyLang();
  const user = currentUser();
  const { path } = parseHash(location.hash);
  const nav = user ? ROUTES.filter((r) => r.nav && (r.perm === null || can(r.perm))).map((r) => {
    const label = r.name === 'users' && !can('users.manage') ? t('nav.account') : t(r.nav);
    const active = path.split('/')[0] === r.name || (r.name === 'search' && path.startsWith('records/'));
    return h('a', { href: `#/${r.name}`, class: active ? 'nav-link active' : 'nav-link', 'aria-current': active ? 'page' : null, text: label });
  }) : [];
  replace(els.header,
    h('div', { class: 'brand' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true', text: '档' }),
      h('span', { class: 'brand-name', text: hallName() || t('app.title') })),
    h('nav', { class: 'nav', 'aria-label': t('app.title') }, nav),
    h('div', { class: 'header-tools' },
      user && h('a', { class: 'user', href: '#/users', title: user.username },
        h('span', { class: 'user-name', text: user.display_name || user.username }),
        h('span', { class: 'user-role', text: tOr(`role.${user.role}`, user.role || '') })),
      h('button', { type: 'button', class: 'btn btn-ghost', title: t('header.help'), 'aria-label': t('header.help'), text: '?', onClick: showHelp }),
      h('button', { type: 'button', class: 'btn btn-ghost', title: t('header.langTitle'), lang: getLang() === 'zh' ? 'en' : 'zh',
        text: t('header.lang'), onClick: switchLanguage }),
      user && h('button', { type: 'button', class: 'btn btn-ghost', text: t('header.logout'), onClick: logout })));
}

function switchLanguage() {
  if (!confirmLeave()) return;
  setLang(getLang() === 'zh' ? 'en' : 'zh');
  applyLang();
  current = null; // re-mount the screen in the new language
  route();
}

function applyLang() {
  document.documentElement.lang = getLang() === 'zh' ? 'zh-CN' : 'en';
  document.title = hallName() ? `${hallName()} · ${t('app.title')}` : t('app.title');
  els.skip.textContent = t('app.skip');
}

async function logout() {
  if (!confirmLeave()) return;
  try { await api('/auth/logout', { method: 'POST', quiet: true }); } catch (_) { /* the session is gone either way */ }
  goLogin('loggedout');
}

function confirmLeave() {
  const dirty = current && current.handle && current.handle.isDirty && current.handle.isDirty();
  return !dirty || window.confirm(t('common.unsaved'));
}

// --- router -------------------------------------------------------------------------------------
async function route() {
  if (ignoreHash === location.hash) { ignoreHash = null; return; }
  const { path, query } = parseHash(location.hash);
  if (!sessionChecked) {
    sessionChecked = true;
    try {
      await loadSession();
    } catch (err) {
      replace(els.main, h('div', { class: 'error-box', role: 'alert', text: serverMessage(err.detail) }));
      sessionChecked = false;
      return;
    }
  }
  const user = currentUser();
  if (!path) { navigate(user ? defaultRoute() : '#/login'); return; }
  const found = ROUTES.map((r) => ({ r, m: r.re.exec(path) })).find((x) => x.m);
  if (found && !found.r.public && !user) { goLogin(null); return; }
  if (found && found.r.name === 'login' && user) { navigate(defaultRoute()); return; }

  // The same screen with a new query (search terms, a page in a record): let it update itself.
  if (current && found && current.route === found.r && current.path === path && current.handle && current.handle.update) {
    current.query = query.toString();
    current.handle.update({ params: found.m.slice(1), query });
    renderHeader();
    return;
  }
  if (current && current.handle) {
    if (current.handle.isDirty && current.handle.isDirty() && !window.confirm(t('common.unsaved'))) {
      ignoreHash = current.hash;
      location.hash = current.hash; // put the address back; the screen stays as it is
      return;
    }
    if (current.handle.unmount) current.handle.unmount();
  }
  current = null;
  renderHeader();
  const container = h('div', { class: 'screen' });
  replace(els.main, container);
  if (!found) { container.appendChild(h('p', { class: 'notice', text: t('common.notFound') })); return; }
  if (found.r.perm && !can(found.r.perm)) { container.appendChild(h('p', { class: 'notice', text: t('common.forbidden') })); return; }
  container.classList.add(`screen-${found.r.name}`);
  document.body.dataset.screen = found.r.name;
  let handle = {};
  try {
    handle = found.r.screen.mount(container, { params: found.m.slice(1), query, navigate, canVisit }) || {};
  } catch (err) {
    if (globalThis.console) console.error(err);
    replace(container, h('div', { class: 'error-box', role: 'alert', text: t('common.error') }));
  }
  current = { route: found.r, path, hash: location.hash, handle };
}

// --- start --------------------------------------------------------------------------------------
function start() {
  initLang();
  els.header = document.getElementById('app-header');
  els.main = document.getElementById('app-main');
  els.skip = document.getElementById('skip-link');
  // The skip link must not touch the hash (the router owns it): move focus instead.
  els.skip.addEventListener('click', (e) => { e.preventDefault(); els.main.focus(); });
  applyLang();
  setHandlers({
    onUnauthorized: () => { if (currentUser()) goLogin('expired'); else if (parseHash(location.hash).path !== 'login') goLogin(null); },
    onError: (err) => toast(serverMessage(err.detail), 'error'),
  });
  keys.install(document);
  keys.bindAll([
    ['?', showHelp, { desc: 'keys.help' }],
    ['/', () => { if (can('search')) focusSearch(); }, { desc: 'keys.search' }],
    ['g i', () => navigate('#/intake'), { desc: 'keys.gotoIntake' }],
    ['g s', () => navigate('#/search'), { desc: 'keys.gotoSearch' }],
  ]);
  window.addEventListener('hashchange', route);
  window.addEventListener('beforeunload', (e) => {
    if (current && current.handle && current.handle.isDirty && current.handle.isDirty()) { e.preventDefault(); e.returnValue = ''; }
  });
  route();
}

/** '/' : focus the search box, opening the search screen first when elsewhere. */
function focusSearch() {
  const box = document.getElementById('search-box');
  if (box) { box.focus(); box.select(); return; }
  navigate('#/search');
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
}
