// The page side of the record view: the zoomable page image with the OCR line boxes, its
// toolbar (page, zoom, cleaned ↔ original, boxes on/off), the thumbnail strip, and the OCR
// text pane. Selecting a line in the text highlights its box and the other way round.

import { h, replace } from '../dom.js';
import { apiUrl } from '../api.js';
import { t } from '../i18n.js';
import { createViewer, flagBadges } from '../widgets.js';

const LOW_CONFIDENCE = 0.8;

export function createPages(record) {
  // `index` is the page's number in the record (0-based); fall back to its position.
  const pages = (Array.isArray(record.pages) ? record.pages : []).map((p, i) => ({ ...p, index: p.index ?? p.idx ?? i }));
  const st = { page: 0, line: -1, kind: 'cleaned', boxes: true };
  const imageUrl = (p, kind) => apiUrl(`/records/${encodeURIComponent(record.id)}/pages/${p.index}/image`, { kind });

  const viewer = createViewer({
    onBoxClick: (i) => selectLine(i, { reveal: false, scroll: true }),
    onChange: ({ scale }) => { zoomLabel.textContent = `${Math.round(scale * 100)}%`; },
    errorText: t('record.imageFailed'),
  });

  // --- toolbar
  const pageLabel = h('span', { class: 'page-label', 'aria-live': 'polite' });
  const zoomLabel = h('span', { class: 'zoom-label' });
  const prevBtn = h('button', { type: 'button', class: 'btn btn-small', title: t('record.prevPage'), 'aria-label': t('record.prevPage'), text: '‹', onClick: () => showPage(st.page - 1) });
  const nextBtn = h('button', { type: 'button', class: 'btn btn-small', title: t('record.nextPage'), 'aria-label': t('record.nextPage'), text: '›', onClick: () => showPage(st.page + 1) });
  const kindBtn = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'false', onClick: () => toggleKind() });
  const boxesBox = h('input', { type: 'checkbox', checked: true, onChange: () => { st.boxes = boxesBox.checked; applyOverlay(); } });
  const pageFlags = h('span', { class: 'page-flags-inline' });
  const toolbar = h('div', { class: 'viewer-toolbar' },
    h('span', { class: 'group' }, prevBtn, pageLabel, nextBtn),
    h('span', { class: 'group' },
      h('button', { type: 'button', class: 'btn btn-small', title: t('record.zoomOut'), 'aria-label': t('record.zoomOut'), text: '−', onClick: () => viewer.zoomOut() }),
      zoomLabel,
      h('button', { type: 'button', class: 'btn btn-small', title: t('record.zoomIn'), 'aria-label': t('record.zoomIn'), text: '+', onClick: () => viewer.zoomIn() }),
      h('button', { type: 'button', class: 'btn btn-small', text: t('record.fitWidth'), onClick: () => viewer.fitWidth() }),
      h('button', { type: 'button', class: 'btn btn-small', text: t('record.fitPage'), onClick: () => viewer.fitPage() })),
    h('span', { class: 'group' }, kindBtn,
      h('label', { class: 'check' }, boxesBox, h('span', { text: t('record.showBoxes') }))),
    pageFlags);

  const thumbs = pages.length > 1 ? h('div', { class: 'thumb-strip', role: 'tablist', 'aria-label': t('record.pages') },
    pages.map((p, i) => h('button', { type: 'button', class: 'thumb', role: 'tab', 'aria-label': t('record.pageN', { n: i + 1 }), onClick: () => showPage(i) },
      h('img', { src: imageUrl(p, 'thumbnail'), alt: '', loading: 'lazy' }),
      h('span', { class: 'thumb-no', text: String(i + 1) })))) : null;

  const imagePane = h('section', { class: 'record-image', 'aria-label': t('record.image') }, toolbar, viewer.el, thumbs);

  // --- text pane
  const textTitle = h('h2', { class: 'panel-title' });
  const textList = h('ol', { class: 'ocr-lines' });
  const textPane = h('section', { class: 'record-text panel', 'aria-label': t('record.text') }, textTitle, textList);

  function applyOverlay() {
    viewer.setOverlayVisible(st.boxes && st.kind === 'cleaned');
  }

  function showPage(i, { keepLine = false } = {}) {
    if (!pages.length) {
      replace(textList, h('li', { class: 'muted', text: t('record.noPages') }));
      return;
    }
    const next = Math.max(0, Math.min(pages.length - 1, i));
    const changed = next !== st.page || !viewer.el.dataset.loaded;
    st.page = next;
    const p = pages[next];
    if (changed) {
      viewer.el.dataset.loaded = '1';
      viewer.setPage({ src: imageUrl(p, st.kind), width: p.width, height: p.height, lines: p.lines || [], overlay: st.boxes && st.kind === 'cleaned' });
      renderText(p);
    }
    if (!keepLine) st.line = -1;
    pageLabel.textContent = t('record.pageOf', { n: next + 1, total: pages.length });
    prevBtn.disabled = next === 0;
    nextBtn.disabled = next === pages.length - 1;
    replace(pageFlags, flagBadges(p.flags || (p.clean_report && p.clean_report.flags) || []));
    if (thumbs) {
      [...thumbs.children].forEach((b, k) => {
        b.classList.toggle('active', k === next);
        b.setAttribute('aria-selected', k === next ? 'true' : 'false');
      });
      const active = thumbs.children[next];
      if (active) thumbs.scrollLeft = Math.max(0, active.offsetLeft - (thumbs.clientWidth - active.offsetWidth) / 2);
    }
  }

  function renderText(p) {
    const lines = p.lines || [];
    const mean = lines.length ? lines.reduce((a, l) => a + (Number(l.confidence) || 0), 0) / lines.length : null;
    replace(textTitle, t('record.textOfPage', { n: st.page + 1 }),
      mean !== null ? h('span', { class: 'muted small', text: ` · ${t('record.meanConf', { c: Math.round(mean * 100) })}` }) : null);
    if (!lines.length) {
      replace(textList, h('li', { class: 'muted', text: p.text ? p.text : t('record.noText') }));
      return;
    }
    replace(textList, lines.map((line, i) => {
      const low = typeof line.confidence === 'number' && line.confidence < LOW_CONFIDENCE;
      const li = h('li', {
        class: low ? 'ocr-line low' : 'ocr-line',
        tabindex: '-1',
        'data-index': String(i),
        title: typeof line.confidence === 'number' ? t('record.confidence', { c: Math.round(line.confidence * 100) }) : null,
        onClick: () => selectLine(i, { reveal: true, scroll: false }),
      }, line.text ? line.text : h('span', { class: 'muted', text: t('record.emptyLine') }));
      return li;
    }));
  }

  /** Select line `i` of the current page: highlight row and box; reveal the box / scroll the row. */
  function selectLine(i, { reveal = true, scroll = true } = {}) {
    const rows = textList.querySelectorAll('.ocr-line');
    rows.forEach((r) => r.classList.remove('active'));
    st.line = i;
    const row = rows[i];
    if (row) {
      row.classList.add('active');
      // Scroll only the text list (scrollIntoView would also move the fixed-height layout).
      if (scroll) textList.scrollTop = Math.max(0, row.offsetTop - (textList.clientHeight - row.offsetHeight) / 2);
    }
    viewer.highlight(i, { reveal });
  }

  function toggleKind() {
    st.kind = st.kind === 'cleaned' ? 'original' : 'cleaned';
    updateKindButton();
    const p = pages[st.page];
    if (!p) return;
    viewer.setPage({ src: imageUrl(p, st.kind), width: p.width, height: p.height, lines: p.lines || [], overlay: st.boxes && st.kind === 'cleaned' });
    if (st.line >= 0 && st.kind === 'cleaned') viewer.highlight(st.line);
  }

  function updateKindButton() {
    kindBtn.textContent = st.kind === 'cleaned' ? t('record.showOriginal') : t('record.showCleaned');
    kindBtn.setAttribute('aria-pressed', st.kind === 'original' ? 'true' : 'false');
    kindBtn.title = st.kind === 'cleaned' ? t('record.kindCleaned') : t('record.kindOriginal');
  }

  /** Page position and line of a suggestion's global line number (lines of all pages in order). */
  function locateGlobalLine(n) {
    let rest = Number(n);
    for (let i = 0; i < pages.length; i += 1) {
      const count = (pages[i].lines || []).length;
      if (rest < count) return { page: i, line: rest };
      rest -= count;
    }
    return null;
  }

  /** Go to page with index `pageIndex` (pages[].index) and select line `line`. */
  function goTo(pageIndex, line) {
    const pos = pages.findIndex((p) => p.index === pageIndex);
    const i = pos >= 0 ? pos : Number(pageIndex) || 0;
    showPage(i, { keepLine: true });
    if (line !== null && line !== undefined && line >= 0) requestAnimationFrame(() => selectLine(line, { reveal: true, scroll: true }));
  }

  updateKindButton();
  return {
    imagePane,
    textPane,
    start: () => showPage(0),
    showPage,
    next: () => showPage(st.page + 1),
    prev: () => showPage(st.page - 1),
    zoomIn: () => viewer.zoomIn(),
    zoomOut: () => viewer.zoomOut(),
    fit: () => viewer.fitWidth(),
    goTo,
    jumpToGlobalLine(n) {
      const pos = locateGlobalLine(n);
      if (pos) { showPage(pos.page, { keepLine: true }); requestAnimationFrame(() => selectLine(pos.line)); }
    },
    destroy: () => viewer.destroy(),
  };
}
