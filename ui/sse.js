// The live event stream (GET /api/v1/events, server-sent events) with reconnection.
// EventSource reconnects by itself after a dropped connection and sends Last-Event-ID. It gives
// up for good when the server answers with an error status (401 after the session expired,
// 503, …); then we ask /auth/session (a 401 there sends the app to the login screen) and open
// a new EventSource after a back-off, passing the last id as ?last_event_id= because a new
// EventSource cannot set the header.

import { API_BASE, api } from './api.js';

export const EVENT_TYPES = ['job.received', 'job.preview', 'job.stored', 'job.quarantined', 'job.duplicate', 'queue'];
const BACKOFF_MS = [1000, 2000, 5000, 10000, 20000];

/**
 * connectEvents({onEvent(type, data), onState('connecting'|'live'|'reconnecting'|'offline'), onResync()})
 * Returns close(). `onResync` is called after a reconnect that may have missed events.
 */
export function connectEvents({ onEvent, onState = () => {}, onResync = () => {} }) {
  let source = null;
  let lastId = null;
  let attempt = 0;
  let timer = null;
  let closed = false;
  let everOpen = false;

  function open() {
    if (closed) return;
    onState(everOpen ? 'reconnecting' : 'connecting');
    const url = lastId ? `${API_BASE}/events?last_event_id=${encodeURIComponent(lastId)}` : `${API_BASE}/events`;
    source = new EventSource(url);
    source.onopen = () => {
      if (everOpen) onResync();
      everOpen = true;
      attempt = 0;
      onState('live');
    };
    source.onerror = () => {
      if (closed) return;
      if (source.readyState === EventSource.CONNECTING) { onState('reconnecting'); return; }
      // CLOSED: the browser will not retry. Check the session, then retry ourselves.
      source.close();
      onState('offline');
      const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      attempt += 1;
      api('/auth/session', { quiet: true })
        .catch(() => null) // a 401 here is handled by the app (login screen); others: just retry
        .finally(() => { if (!closed) timer = setTimeout(open, delay); });
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
        let data = null;
        try { data = JSON.parse(event.data); } catch (_) { return; }
        if (data && typeof data === 'object') onEvent(type, data);
      });
    }
  }

  open();
  return function close() {
    closed = true;
    clearTimeout(timer);
    if (source) source.close();
  };
}
