// Keyboard shortcuts. Combos are written 'ctrl+s', 'ctrl+enter', '/', '?', 'g i' (a sequence:
// g, then i within a second), 'arrowdown'. Single keys are ignored while typing in a field;
// combos with Ctrl/Meta and 'escape' work everywhere. Screens bind on mount and call the
// returned function on unmount. No DOM access at import time.

const bindings = []; // {combo, handler, desc, global, inFields}
let pendingPrefix = null;
let pendingTimer = null;
let installed = false;

/**
 * bind('j', fn, {desc: 'keys.nextPage', inFields: false}) -> unbind()
 * `desc` is an i18n key shown in the help overlay; bindings without desc are hidden there.
 * Later bindings win over earlier ones (a screen's 'j' over a global one).
 */
export function bind(combo, handler, options = {}) {
  const entry = { combo: normaliseCombo(combo), handler, desc: options.desc || null, inFields: Boolean(options.inFields) };
  bindings.push(entry);
  return () => {
    const i = bindings.indexOf(entry);
    if (i >= 0) bindings.splice(i, 1);
  };
}

/** Bind several at once; returns one function that unbinds them all. */
export function bindAll(list) {
  const offs = list.map(([combo, handler, options]) => bind(combo, handler, options));
  return () => offs.forEach((off) => off());
}

/** The active bindings that have a description, for the help overlay (latest wins per combo). */
export function describe() {
  const seen = new Map();
  for (const b of bindings) if (b.desc) seen.set(b.combo, b.desc);
  return [...seen.entries()].map(([combo, desc]) => ({ combo, desc }));
}

export function normaliseCombo(combo) {
  return combo.trim().toLowerCase().split(/\s+/).map((part) => {
    if (part === '+') return '+';
    const keys = part.split('+').filter(Boolean);
    const key = keys.pop();
    const mods = keys.map((m) => (m === 'cmd' || m === 'meta' ? 'ctrl' : m)).sort();
    return [...mods, key].join('+');
  }).join(' ');
}

/** The combo string of a KeyboardEvent ('ctrl+s', 'shift+?' is reported as '?'). */
export function eventCombo(event) {
  let key = (event.key || '').toLowerCase();
  if (key === ' ') key = 'space';
  if (key === 'esc') key = 'escape';
  if (key === '=' && !event.ctrlKey && !event.metaKey) key = '+'; // '+' without Shift on US layouts
  const mods = [];
  if (event.altKey) mods.push('alt');
  if (event.ctrlKey || event.metaKey) mods.push('ctrl');
  // Shift is part of the character for printable keys ('?', '+', 'G'); keep it only for named keys.
  if (event.shiftKey && key.length > 1) mods.push('shift');
  return [...mods.sort(), key].join('+');
}

function isTyping(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName.toLowerCase();
  if (tag === 'textarea' || tag === 'select' || target.isContentEditable) return true;
  if (tag !== 'input') return false;
  const type = (target.getAttribute('type') || 'text').toLowerCase();
  return !['checkbox', 'radio', 'button', 'submit', 'reset'].includes(type);
}

function find(combo, typing) {
  for (let i = bindings.length - 1; i >= 0; i -= 1) {
    const b = bindings[i];
    if (b.combo !== combo) continue;
    const modified = combo.includes('ctrl+') || combo === 'escape';
    if (typing && !modified && !b.inFields) continue;
    return b;
  }
  return null;
}

function onKeyDown(event) {
  if (event.isComposing || event.keyCode === 229) return; // an IME (Pinyin) is composing
  // Inside a modal dialog only the dialog's own keys (Enter, Esc, Tab) apply.
  if (event.target && event.target.closest && event.target.closest('dialog')) return;
  const combo = eventCombo(event);
  if (['shift', 'control', 'alt', 'meta'].includes(combo.split('+').pop())) return;
  const typing = isTyping(event.target);

  if (pendingPrefix) {
    const seq = `${pendingPrefix} ${combo}`;
    clearTimeout(pendingTimer);
    pendingPrefix = null;
    const b = find(seq, typing);
    if (b) { event.preventDefault(); b.handler(event); return; }
  }
  const b = find(combo, typing);
  if (b) {
    const result = b.handler(event);
    if (result !== false) event.preventDefault();
    return;
  }
  // Start of a sequence ('g' of 'g i')?
  if (!typing && bindings.some((x) => x.combo.startsWith(`${combo} `))) {
    pendingPrefix = combo;
    pendingTimer = setTimeout(() => { pendingPrefix = null; }, 1000);
    event.preventDefault();
  }
}

export function install(target) {
  if (installed) return;
  installed = true;
  target.addEventListener('keydown', onKeyDown);
}

/** Human form of a combo for the help overlay: 'ctrl+enter' -> 'Ctrl + Enter'. */
export function displayCombo(combo) {
  const names = { ctrl: 'Ctrl', shift: 'Shift', alt: 'Alt', enter: 'Enter', escape: 'Esc', arrowdown: '↓', arrowup: '↑', arrowleft: '←', arrowright: '→' };
  return combo.split(' ').map((part) => (part === '+' ? '+' : part.split('+').map((k) => names[k] || k.toUpperCase()).join(' + '))).join(' → ');
}
