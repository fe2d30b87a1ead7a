// Login (#/login?expired=1&next=#/records/x). Errors come from the API in both languages;
// a 429 shows the Retry-After wait and keeps the button disabled until it has passed.

import { h } from '../dom.js';
import { api } from '../api.js';
import { t, serverMessage } from '../i18n.js';
import { setSession, defaultRoute } from '../session.js';

export function mount(container, { query, navigate, canVisit = () => true }) {
  const username = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true, maxlength: 64, autocapitalize: 'off', spellcheck: 'false' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 256 });
  const message = h('p', { class: 'form-message', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: t('login.submit') });
  let countdown = null;
  let throttledUntil = 0;

  const notice = query.has('expired') ? t('login.expired') : query.has('loggedout') ? t('login.loggedOut') : null;
  const noticeEl = notice ? h('p', { class: 'notice notice-info', text: notice }) : null;
  const form = h('form', { class: 'login-form', novalidate: true },
    h('h1', { class: 'login-title', text: t('login.title') }),
    noticeEl,
    h('label', { class: 'field', for: 'login-username' }, h('span', { class: 'field-label', text: t('login.username') }), username),
    h('label', { class: 'field', for: 'login-password' }, h('span', { class: 'field-label', text: t('login.password') }), password),
    message,
    submit,
    h('p', { class: 'muted small', text: t('login.hint') }));
  container.appendChild(h('div', { class: 'login-wrap' }, form));

  function show(text) {
    message.textContent = text;
    message.hidden = !text;
    if (text && noticeEl) noticeEl.hidden = true; // an error replaces the "logged out" notice
  }

  function throttle(seconds) {
    clearInterval(countdown);
    if (!seconds) { show(t('login.throttledNoTime')); return; }
    let left = seconds;
    throttledUntil = Date.now() + seconds * 1000;
    submit.disabled = true;
    show(t('login.throttled', { s: left }));
    countdown = setInterval(() => {
      left -= 1;
      if (left <= 0) { clearInterval(countdown); submit.disabled = false; show(''); return; }
      show(t('login.throttled', { s: left }));
    }, 1000);
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!username.value.trim() || !password.value) { show(t('login.missing')); (username.value.trim() ? password : username).focus(); return; }
    submit.disabled = true;
    submit.textContent = t('login.busy');
    show('');
    try {
      const data = await api('/auth/login', { method: 'POST', body: { username: username.value.trim(), password: password.value }, quiet: true, allow401: true });
      setSession(data);
      // idle_timeout_s and hall_name come with the session; fetch it once (ignore failures).
      try { setSession(await api('/auth/session', { quiet: true, allow401: true })); } catch (_) { /* login data suffices */ }
      const next = query.get('next');
      navigate(next && next.startsWith('#/') && canVisit(next) ? next : defaultRoute());
    } catch (err) {
      password.value = '';
      if (err.status === 429) throttle(err.retryAfter ?? err.detail.retry_after);
      else show(serverMessage(err.detail));
      password.focus();
    } finally {
      submit.disabled = Date.now() < throttledUntil;
      submit.textContent = t('login.submit');
    }
  });

  username.focus();
  return { unmount() { clearInterval(countdown); } };
}
