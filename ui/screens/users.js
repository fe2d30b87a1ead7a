// Users (#/users): administrators manage accounts (list, add, role, disable/enable, reset
// password); everyone sees "my account" (password, API tokens) below, from account.js.

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage } from '../i18n.js';
import { can, currentUser } from '../session.js';
import { table, toast, openDialog, confirmDialog, badge, loading, errorBox, section } from '../widgets.js';
import { formatDateTime } from '../format.js';
import { passwordPair, passwordSection, tokensSection, MIN_PASSWORD } from './account.js';

export const ROLES = ['clerk', 'supervisor', 'technician', 'admin'];
const USERNAME = /^[a-z][a-z0-9_.-]{1,31}$/; // as the API's NewUser model

function roleSelect(value, attrs = {}) {
  return h('select', attrs, ROLES.map((r) => h('option', { value: r, text: t(`role.${r}`), selected: r === value })));
}

export function mount(container) {
  const parts = [h('h1', { class: 'screen-title', text: can('users.manage') ? t('nav.users') : t('nav.account') })];
  if (can('users.manage')) parts.push(usersSection());
  const me = currentUser();
  parts.push(h('div', { class: 'account-grid' }, passwordSection(), tokensSection()));
  if (me) parts.splice(1, 0, h('p', { class: 'muted' }, t('account.signedInAs', { name: me.display_name || me.username, role: tOr(`role.${me.role}`, me.role) })));
  container.appendChild(h('div', { class: 'users' }, parts));
  return {};
}

function usersSection() {
  const list = h('div');

  async function load() {
    replace(list, loading());
    try {
      const data = await api('/users', { quiet: true });
      const items = Array.isArray(data) ? data : Array.isArray(data && data.items) ? data.items : [];
      render(items);
    } catch (err) {
      if (err.status !== 401) replace(list, errorBox(serverMessage(err.detail), load));
    }
  }

  function render(items) {
    const me = currentUser();
    const hasLogin = items.some((u) => u.last_login_at || u.last_login);
    replace(list, table([
      { label: t('login.username'), cell: (u) => u.username, className: 'mono' },
      { label: t('users.displayName'), cell: (u) => u.display_name || '' },
      { label: t('users.role'), cell: (u) => {
        const sel = roleSelect(u.role, { 'aria-label': t('users.role'), disabled: me && me.username === u.username });
        sel.addEventListener('change', () => changeRole(u, sel));
        return sel;
      } },
      { label: t('users.status'), cell: (u) => (u.disabled ? badge(t('users.disabled'), 'bad') : badge(t('users.enabled'), 'ok')) },
      hasLogin ? { label: t('users.lastLogin'), cell: (u) => formatDateTime(u.last_login_at || u.last_login) || '—', className: 'nowrap' } : null,
      { label: '', cell: (u) => h('span', { class: 'row-actions' },
        h('button', { type: 'button', class: 'btn btn-small', disabled: me && me.username === u.username,
          text: u.disabled ? t('users.enable') : t('users.disable'), onClick: () => toggle(u) }),
        h('button', { type: 'button', class: 'btn btn-small', text: t('users.resetPassword'), onClick: () => resetPassword(u) })) },
    ].filter(Boolean), items, { empty: t('common.empty'), rowClass: (u) => (u.disabled ? 'row-disabled' : null) }));
  }

  async function patch(u, body, doneKey) {
    try {
      await api(`/users/${encodeURIComponent(u.username)}`, { method: 'PATCH', body });
      toast(t(doneKey, { name: u.username }), 'success');
    } catch (_) { /* shown by the API wrapper */ }
    load();
  }

  async function changeRole(u, sel) {
    const role = sel.value;
    const ok = await confirmDialog(t('users.roleTitle'), t('users.roleBody', { name: u.username, role: t(`role.${role}`) }));
    if (!ok) { sel.value = u.role; return; }
    patch(u, { role }, 'users.roleChanged');
  }

  async function toggle(u) {
    const disabling = !u.disabled;
    const ok = await confirmDialog(disabling ? t('users.disableTitle') : t('users.enableTitle'),
      t(disabling ? 'users.disableBody' : 'users.enableBody', { name: u.username }), { danger: disabling });
    if (ok) patch(u, { disabled: disabling }, disabling ? 'users.disabledDone' : 'users.enabledDone');
  }

  async function resetPassword(u) {
    const pair = passwordPair('reset');
    const r = await openDialog({ title: t('users.resetTitle', { name: u.username }), body: t('users.resetBody'), extra: h('div', null, pair.nodes), validate: pair.ok, confirmLabel: t('users.resetPassword') });
    if (r) patch(u, { password: pair.value() }, 'users.passwordReset');
  }

  // --- add a user
  const username = h('input', { type: 'text', maxlength: 32, autocapitalize: 'off', autocomplete: 'off', spellcheck: 'false' });
  const display = h('input', { type: 'text', maxlength: 64, autocomplete: 'off' });
  const role = roleSelect('clerk');
  const pair = passwordPair('new-user');
  const form = h('form', { class: 'stack-form add-user' },
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('login.username') }), username),
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('users.displayName') }), display),
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('users.role') }), role),
    pair.nodes,
    h('button', { type: 'submit', class: 'btn btn-primary', text: t('users.add') }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!USERNAME.test(username.value.trim())) { toast(t('users.usernameRule'), 'error'); return; }
    if (!pair.ok()) { toast(t('account.passwordInvalid', { n: MIN_PASSWORD }), 'error'); return; }
    try {
      await api('/users', { method: 'POST', body: { username: username.value.trim(), display_name: display.value.trim() || username.value.trim(), role: role.value, password: pair.value() } });
      toast(t('users.added', { name: username.value.trim() }), 'success');
      username.value = '';
      display.value = '';
      pair.clear();
      load();
    } catch (_) { /* shown by the API wrapper */ }
  });

  load();
  return h('div', { class: 'users-admin' },
    section(t('users.list'), list),
    h('details', { class: 'panel' }, h('summary', { class: 'panel-title', text: t('users.add') }), form));
}
