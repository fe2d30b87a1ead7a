// Page image viewer: zoom (wheel, buttons, keys), pan (drag), and the OCR line boxes drawn as
// an SVG overlay. The image and the overlay sit in one "stage" element sized in image pixels
// and moved with a CSS transform (translate + scale), so the boxes follow the image exactly.
// Line boxes are in cleaned-page pixels (page.width x page.height); the overlay's viewBox is
// that size and is stretched over the image, so a downscaled image still lines up.

import { h, s, clear } from './dom.js';

const MIN_SCALE = 0.05;
const MAX_SCALE = 8;
const LOW_CONFIDENCE = 0.8;
const MARGIN = 40; // px of the page kept inside the frame when panning

/** Four [x, y] points from a box given as [[x,y]x4] or [x0, y0, x1, y1]. */
export function boxPoints(box) {
  if (!Array.isArray(box)) return [];
  if (box.length === 4 && box.every((p) => typeof p === 'number')) {
    const [x0, y0, x1, y1] = box;
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  }
  return box.filter((p) => Array.isArray(p) && p.length >= 2).map((p) => [Number(p[0]), Number(p[1])]);
}

export function createViewer({ onBoxClick = () => {}, onChange = () => {}, errorText = '' } = {}) {
  const img = h('img', { class: 'viewer-img', alt: '', draggable: 'false' });
  const overlay = s('svg', { class: 'viewer-overlay', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  const stage = h('div', { class: 'viewer-stage' }, img, overlay);
  const message = h('div', { class: 'viewer-message', hidden: true });
  const root = h('div', { class: 'viewer', tabindex: '0' }, stage, message);

  const st = { scale: 1, tx: 0, ty: 0, natW: 1, natH: 1, pageW: 1, pageH: 1, fit: 'width', active: -1, polys: [] };

  function apply() {
    clampPan();
    stage.style.transform = `translate(${st.tx}px, ${st.ty}px) scale(${st.scale})`;
    onChange({ scale: st.scale });
  }

  function clampPan() {
    const cw = root.clientWidth;
    const ch = root.clientHeight;
    const w = st.natW * st.scale;
    const hgt = st.natH * st.scale;
    st.tx = Math.min(Math.max(st.tx, Math.min(0, cw - w) - MARGIN), Math.max(0, cw - w) + MARGIN);
    st.ty = Math.min(Math.max(st.ty, Math.min(0, ch - hgt) - MARGIN), Math.max(0, ch - hgt) + MARGIN);
  }

  function setStageSize(w, hgt) {
    st.natW = Math.max(1, w);
    st.natH = Math.max(1, hgt);
    stage.style.width = `${st.natW}px`;
    stage.style.height = `${st.natH}px`;
  }

  function fitWidth() {
    const cw = root.clientWidth || 600;
    st.scale = clampScale((cw - 16) / st.natW);
    st.tx = 8;
    st.ty = 8;
    st.fit = 'width';
    apply();
  }

  function fitPage() {
    const cw = root.clientWidth || 600;
    const ch = root.clientHeight || 600;
    st.scale = clampScale(Math.min((cw - 16) / st.natW, (ch - 16) / st.natH));
    st.tx = (cw - st.natW * st.scale) / 2;
    st.ty = (ch - st.natH * st.scale) / 2;
    st.fit = 'page';
    apply();
  }

  const clampScale = (v) => Math.min(MAX_SCALE, Math.max(MIN_SCALE, v));

  /** Zoom by `factor` around the point (x, y) of the frame (its centre by default). */
  function zoomBy(factor, x = root.clientWidth / 2, y = root.clientHeight / 2) {
    const next = clampScale(st.scale * factor);
    st.tx = x - (x - st.tx) * (next / st.scale);
    st.ty = y - (y - st.ty) * (next / st.scale);
    st.scale = next;
    st.fit = null;
    apply();
  }

  // --- the page and its line boxes
  function setPage({ src, width, height, lines = [], overlay: showOverlay = true }) {
    st.pageW = Math.max(1, width || 1);
    st.pageH = Math.max(1, height || 1);
    st.active = -1;
    message.hidden = true;
    setStageSize(st.pageW, st.pageH);
    drawBoxes(lines);
    setOverlayVisible(showOverlay);
    img.src = src;
    if (st.fit === 'page') fitPage(); else fitWidth();
  }

  function drawBoxes(lines) {
    clear(overlay);
    overlay.setAttribute('viewBox', `0 0 ${st.pageW} ${st.pageH}`);
    st.polys = lines.map((line, i) => {
      const pts = boxPoints(line.box);
      const low = typeof line.confidence === 'number' && line.confidence < LOW_CONFIDENCE;
      const poly = s('polygon', {
        points: pts.map((p) => p.join(',')).join(' '),
        class: low ? 'ocr-box low' : 'ocr-box',
        'data-index': String(i),
      }, s('title', { text: line.text || '' }));
      overlay.appendChild(poly);
      return poly;
    });
  }

  function setOverlayVisible(visible) {
    overlay.classList.toggle('hidden', !visible);
  }

  img.addEventListener('load', () => {
    // The original (uncleaned) scan has its own size; the cleaned page matches the boxes.
    if (img.naturalWidth && (Math.abs(img.naturalWidth - st.natW) > 1 || Math.abs(img.naturalHeight - st.natH) > 1)) {
      const sameAspect = Math.abs(img.naturalWidth / img.naturalHeight - st.pageW / st.pageH) < 0.01;
      if (!sameAspect || overlay.classList.contains('hidden')) {
        setStageSize(img.naturalWidth, img.naturalHeight);
        if (st.fit === 'page') fitPage(); else fitWidth();
      }
    }
  });
  img.addEventListener('error', () => {
    message.textContent = errorText;
    message.hidden = !errorText;
  });

  /** Mark line `i` (or none with -1); with `reveal`, pan so its box is in view. */
  function highlight(i, { reveal = false } = {}) {
    if (st.polys[st.active]) st.polys[st.active].classList.remove('active');
    st.active = i;
    const poly = st.polys[i];
    if (!poly) return;
    poly.classList.add('active');
    if (reveal) revealBox(i);
  }

  function revealBox(i) {
    const pts = st.polys[i] ? st.polys[i].getAttribute('points').split(' ').map((p) => p.split(',').map(Number)) : [];
    if (!pts.length) return;
    const k = st.natW / st.pageW; // stage px per page px
    const xs = pts.map((p) => p[0] * k * st.scale + st.tx);
    const ys = pts.map((p) => p[1] * k * st.scale + st.ty);
    const cw = root.clientWidth;
    const ch = root.clientHeight;
    const inView = Math.min(...xs) >= 0 && Math.max(...xs) <= cw && Math.min(...ys) >= 0 && Math.max(...ys) <= ch;
    if (inView) return;
    const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
    const cy = (Math.min(...ys) + Math.max(...ys)) / 2;
    st.tx += cw / 2 - cx;
    st.ty += ch / 2 - cy;
    apply();
  }

  // --- pointer: drag to pan, click on a box to select its line
  let drag = null;
  root.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    const target = e.target.closest ? e.target.closest('polygon') : null;
    drag = { x: e.clientX, y: e.clientY, tx: st.tx, ty: st.ty, moved: false, box: target ? Number(target.dataset.index) : -1 };
    root.setPointerCapture(e.pointerId);
  });
  root.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    root.classList.add('dragging');
    st.tx = drag.tx + dx;
    st.ty = drag.ty + dy;
    st.fit = null;
    apply();
  });
  const endDrag = () => {
    if (drag && !drag.moved && drag.box >= 0) onBoxClick(drag.box);
    drag = null;
    root.classList.remove('dragging');
  };
  root.addEventListener('pointerup', endDrag);
  root.addEventListener('pointercancel', () => { drag = null; root.classList.remove('dragging'); });

  root.addEventListener('wheel', (e) => {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    const rect = root.getBoundingClientRect();
    zoomBy(Math.exp(-e.deltaY * unit * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });

  // Refit when the frame changes size (window resize) unless the user zoomed by hand.
  const resize = typeof ResizeObserver === 'function' ? new ResizeObserver(() => {
    if (st.fit === 'width') fitWidth(); else if (st.fit === 'page') fitPage(); else apply();
  }) : null;
  if (resize) resize.observe(root);

  return {
    el: root,
    setPage,
    setOverlayVisible,
    highlight,
    zoomIn: () => zoomBy(1.25),
    zoomOut: () => zoomBy(0.8),
    fitWidth,
    fitPage,
    get scale() { return st.scale; },
    destroy() { if (resize) resize.disconnect(); img.removeAttribute('src'); },
  };
}
