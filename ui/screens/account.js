// "My account", shown to everyone on #/users: change my password, and my API tokens (for
// scripts; the secret is shown once, right after it is made).

import { h, replace } from '../dom.js';
import { api } from '../api.js';
import { t, tOr, serverMessage } from '../i18n.js';
import { currentUser } from '../session.js';
import { table, toast, openDialog, confirmDialog, badge, loading, errorBox, section } from '../widgets.js';
import { formatDateTime } from '../format.js';

export const MIN_PASSWORD = 10; // client hint only; the server's rule is authoritative

/** Two password inputs with a check that they match and are long enough. */
export function passwordPair(prefix) {
  const a = h('input', { type: 'password', id: `${prefix}-new`, autocomplete: 'new-password', maxlength: 256 });
  const b = h('input', { type: 'password', id: `${prefix}-again`, autocomplete: 'new-password', maxlength: 256 });
  const nodes = [
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('account.newPassword') }), a,
      h('span', { class: 'field-hint', text: t('account.passwordRule', { n: MIN_PASSWORD }) })),
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('account.passwordAgain') }), b),
  ];
  return { nodes, value: () => a.value, ok: () => a.value.length >= MIN_PASSWORD && a.value === b.value, clear: () => { a.value = ''; b.value = ''; } };
}

export function passwordSection() {
  const old = h('input', { type: 'password', id: 'pw-old', autocomplete: 'current-password', maxlength: 256 });
  const pair = passwordPair('pw');
  const submit = h('button', { type: 'submit', class: 'btn', text: t('account.changePassword') });
  const form = h('form', { class: 'stack-form' },
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('account.oldPassword') }), old),
    pair.nodes, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!old.value || !pair.ok()) { toast(t('account.passwordInvalid', { n: MIN_PASSWORD }), 'error'); return; }
    submit.disabled = true;
    try {
      await api('/auth/password', { method: 'POST', body: { old: old.value, new: pair.value() } });
      toast(t('account.passwordChanged'), 'success');
      old.value = '';
      pair.clear();
    } catch (_) { /* shown by the API wrapper */ } finally { submit.disabled = false; }
  });
  return section(t('account.password'), form);
}

export function tokensSection() {
  const list = h('div');
  const name = h('input', { type: 'text', maxlength: 64, placeholder: t('tokens.nameHint'), 'aria-label': t('tokens.name') });
  const days = h('input', { type: 'number', min: 1, max: 365, value: '90', class: 'narrow', 'aria-label': t('tokens.days') });
  const perms = (currentUser() && currentUser().permissions) || [];
  const scopeBoxes = perms.map((p) => ({ p, box: h('input', { type: 'checkbox', value: p, checked: /\.(view|read)$|^search$/.test(p) }) }));
  const form = h('form', { class: 'stack-form' },
    h('label', { class: 'field' }, h('span', { class: 'field-label', text: t('tokens.name') }), name),
    h('fieldset', { class: 'scopes' }, h('legend', { text: t('tokens.scopes') }),
      scopeBoxes.map(({ p, box }) => h('label', { class: 'check' }, box, h('span', { class: 'mono small', text: p })))),
    h('label', { class: 'inline-field' }, h('span', { text: t('tokens.days') }), days),
    h('button', { type: 'submit', class: 'btn', text: t('tokens.create') }));

  async function load() {
    replace(list, loading());
    try {
      const data = await api('/tokens', { quiet: true });
      const items = Array.isArray(data) ? data : Array.isArray(data && data.items) ? data.items : [];
      replace(list, table([
        { label: t('tokens.name'), cell: (k) => k.name || k.id },
        { label: t('tokens.scopes'), cell: (k) => (Array.isArray(k.scopes) ? k.scopes.join(' ') : ''), className: 'mono small wrap' },
        { label: t('tokens.created'), cell: (k) => formatDateTime(k.created_at), className: 'nowrap' },
        { label: t('tokens.expires'), cell: (k) => formatDateTime(k.expires_at) || t('tokens.never'), className: 'nowrap' },
        { label: t('tokens.lastUsed'), cell: (k) => formatDateTime(k.last_used ?? k.last_used_at) || '—', className: 'nowrap' },
        { label: '', cell: (k) => (k.revoked_at || k.active === false
          ? badge(k.revoked_at ? t('tokens.revokedState') : t('tokens.expiredState'), 'neutral')
          : h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', text: t('tokens.revoke'), onClick: () => revoke(k) })) },
      ], items, { empty: t('tokens.none') }));
    } catch (err) {
      if (err.status !== 401) replace(list, errorBox(serverMessage(err.detail), load));
    }
  }

  async function revoke(k) {
    if (!(await confirmDialog(t('tokens.revokeTitle'), t('tokens.revokeBody', { name: k.name || k.id }), { danger: true, confirmLabel: t('tokens.revoke') }))) return;
    try { await api(`/tokens/${encodeURIComponent(k.id)}`, { method: 'DELETE' }); toast(t('tokens.revoked'), 'success'); } catch (_) { /* shown */ }
    load();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const scopes = scopeBoxes.filter((s) => s.box.checked).map((s) => s.p);
    if (!name.value.trim() || !scopes.length) { toast(t('tokens.invalid'), 'error'); return; }
    try {
      const body = { name: name.value.trim(), scopes };
      if (days.value) body.expires_days = Number(days.value);
      const made = await api('/tokens', { method: 'POST', body });
      const secret = made && (made.token || made.secret);
      const out = h('input', { type: 'text', class: 'mono secret', readonly: true, value: secret || '', 'aria-label': t('tokens.secret') });
      const copy = h('button', { type: 'button', class: 'btn btn-small', text: t('common.copy'), onClick: () => copySecret(out) });
      name.value = '';
      await openDialog({ title: t('tokens.createdTitle'), body: t('tokens.createdBody'), extra: h('div', { class: 'secret-row' }, out, copy), confirmLabel: t('common.close'), cancelLabel: null });
      load();
    } catch (_) { /* shown by the API wrapper */ }
  });

  load();
  return section(t('tokens.title'), h('p', { class: 'muted small', text: t('tokens.intro') }), list, h('h3', { class: 'sub-title', text: t('tokens.new') }), form);
}

async function copySecret(input) {
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    toast(t('common.copied'), 'success');
  } catch (_) {
    // No clipboard API (plain HTTP): the text is selected for Ctrl+C.
    toast(tOr('tokens.copyManually', 'Ctrl+C'), 'info');
  }
}
