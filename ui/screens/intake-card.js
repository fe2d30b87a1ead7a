// One scanned file on the live intake screen: thumbnail, counter, time, quality flags, the
// rescan banner, and its outcome (stored → link to the record, quarantined → reason,
// duplicate → link to the earlier record). The card element is kept and its content redrawn
// on every update; the thumbnail <img> is reused so the (audited) preview is fetched once.

import { h, replace, safeApiPath } from '../dom.js';
import { t, tOr } from '../i18n.js';
import { flagBadge, RESCAN_FLAGS } from '../widgets.js';
import { formatWhen } from '../format.js';

/**
 * Flags arrive as a flat list (the union over pages, SSE job.preview) or a list per page
 * (GET /queue preview.flags, or page_flags); return {all, perPage|null}.
 */
export function normaliseFlags(flags, pageFlags) {
  const perPage = Array.isArray(pageFlags) && pageFlags.every(Array.isArray) ? pageFlags
    : Array.isArray(flags) && flags.length && flags.every(Array.isArray) ? flags : null;
  const flat = perPage ? perPage.flat() : Array.isArray(flags) ? flags.filter((f) => typeof f === 'string') : [];
  return { all: [...new Set(flat)], perPage };
}

/** Merge an update into a job model (from an SSE event or a JobSummary). */
export function applyUpdate(job, type, data) {
  switch (type) {
    case 'job.received':
      if (!job.state || job.state === 'new') job.state = 'received';
      break;
    case 'job.preview':
      if (job.state === 'received' || !job.state || job.state === 'new') job.state = 'processing';
      job.hasPreview = true;
      job.previewPages = data.pages ?? job.previewPages;
      break;
    case 'job.stored': job.state = 'stored'; break;
    case 'job.quarantined': job.state = 'quarantined'; break;
    case 'job.duplicate': job.state = 'duplicate'; job.flags = [...new Set([...(job.flags || []), 'duplicate'])]; break;
    default: break;
  }
  for (const key of ['counter', 'landed_at', 'record_id', 'reason_code', 'reason', 'duplicate_of']) {
    if (data[key] !== undefined && data[key] !== null) job[key] = data[key];
  }
  // SSE events carry the event time as "at"; the first one (job.received) is the landing time.
  if (!job.landed_at && data.at && (type === 'job.received' || type === 'job.preview')) job.landed_at = data.at;
  if (type === 'job.stored' && data.pages) job.pages = data.pages;
  if (data.thumbnail) job.thumbnail = safeApiPath(data.thumbnail);
  if (data.flags || data.page_flags) {
    const { all, perPage } = normaliseFlags(data.flags, data.page_flags);
    job.flags = [...new Set([...all, ...(job.state === 'duplicate' ? ['duplicate'] : [])])];
    if (perPage) job.pageFlags = perPage;
  }
  if (typeof data.rescan === 'boolean') job.rescan = data.rescan;
  else if (job.flags) job.rescan = job.flags.some((f) => RESCAN_FLAGS.includes(f));
  return job;
}

/** A job model from GET /queue's JobSummary. */
export function jobFromSummary(summary) {
  const job = { id: summary.id, state: 'new' };
  applyUpdate(job, 'job.received', summary);
  if (summary.preview) {
    applyUpdate(job, 'job.preview', { ...summary.preview, thumbnail: `/api/v1/jobs/${encodeURIComponent(summary.id)}/preview` });
  }
  const terminal = { stored: 'job.stored', quarantined: 'job.quarantined', duplicate: 'job.duplicate' }[summary.state];
  if (terminal) applyUpdate(job, terminal, summary);
  else if (summary.state === 'processing') job.state = 'processing';
  if (summary.pages) job.pages = summary.pages;
  return job;
}

function stateLine(job) {
  switch (job.state) {
    case 'stored':
      return h('div', { class: 'card-state state-ok' },
        h('span', { text: t('intake.stored', { n: job.pages || '?' }) }),
        job.record_id && h('a', { class: 'btn btn-small', href: `#/records/${encodeURIComponent(job.record_id)}`, text: t('intake.openRecord') }));
    case 'quarantined':
      return h('div', { class: 'card-state state-bad' },
        h('strong', { text: t('intake.quarantined') }),
        h('span', { text: tOr(`reason.${job.reason_code}`, job.reason || job.reason_code || '') }),
        h('span', { class: 'muted small', text: tOr(`reasonTodo.${job.reason_code}`, '') }));
    case 'duplicate':
      return h('div', { class: 'card-state state-warn' },
        h('strong', { text: t('intake.duplicate') }),
        job.duplicate_of && h('a', { class: 'btn btn-small', href: `#/records/${encodeURIComponent(job.duplicate_of)}`, text: t('intake.openEarlier') }));
    case 'processing':
      return h('div', { class: 'card-state state-busy' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), t('intake.processing'));
    default:
      return h('div', { class: 'card-state state-busy' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), t('intake.receiving'));
  }
}

function flagsBlock(job) {
  if (job.pageFlags && job.pageFlags.length > 1) {
    return h('ul', { class: 'page-flags' }, job.pageFlags.map((flags, i) => (flags.length
      ? h('li', null, h('span', { class: 'page-no', text: t('intake.pageN', { n: i + 1 }) }), flags.map(flagBadge))
      : null)));
  }
  return job.flags && job.flags.length ? h('div', { class: 'badges' }, job.flags.map(flagBadge)) : null;
}

function rescanBanner(job) {
  if (!job.rescan) return null;
  const pages = (job.pageFlags || []).map((flags, i) => (flags.some((f) => RESCAN_FLAGS.includes(f)) ? i + 1 : null)).filter(Boolean);
  return h('div', { class: 'rescan-banner', role: 'alert' },
    h('strong', { text: t('intake.rescan') }),
    pages.length && job.pageFlags.length > 1 ? h('span', { text: t('intake.rescanPages', { pages: pages.join('、') }) }) : null);
}

/** Create or redraw the card element of `job` (job.el holds it). */
export function renderCard(job) {
  if (!job.el) {
    job.el = h('article', { class: 'card intake-card new', 'data-job': job.id });
    job.img = h('img', { class: 'card-img', alt: '', loading: 'lazy' });
    job.img.addEventListener('error', () => { job.img.hidden = true; job.thumbFailed = true; });
    setTimeout(() => job.el && job.el.classList.remove('new'), 2500);
  }
  if (job.thumbnail && job.img.dataset.src !== job.thumbnail && !job.thumbFailed) {
    job.img.dataset.src = job.thumbnail;
    job.img.src = job.thumbnail;
    job.img.hidden = false;
  }
  job.el.className = `card intake-card state-${job.state}${job.rescan ? ' card-rescan' : ''}${job.el.classList.contains('new') ? ' new' : ''}`;
  const thumb = h('div', { class: 'card-thumb' }, job.thumbnail && !job.thumbFailed ? job.img : h('span', { class: 'thumb-placeholder', 'aria-hidden': 'true', text: '▤' }));
  replace(job.el,
    thumb,
    h('div', { class: 'card-body' },
      h('div', { class: 'card-head' },
        h('span', { class: 'card-counter', text: job.counter || t('intake.counterUnknown') }),
        h('time', { class: 'card-time', text: formatWhen(job.landed_at) })),
      rescanBanner(job),
      flagsBlock(job),
      stateLine(job)));
  return job.el;
}
