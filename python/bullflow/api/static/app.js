// bullflow dashboard: runs list, run page (live DAG), queue and worker panels.
//
// Plain ES module, no build step. Every piece of text from the API is inserted with textContent /
// setAttribute (never innerHTML). The bearer token lives in sessionStorage; a 401 brings the token
// prompt back. Live run updates come from the server-sent events endpoint, read with fetch() so the
// Authorization header can be sent (EventSource cannot send headers).

import { graphOf, layoutDag } from './dag.js';

const TOKEN_KEY = 'bullflow.token';
// 'cancelled': a node a cancellation stopped (bullflow.tracking reports it too).
const TASK_STATUSES = [
  'pending',
  'queued',
  'running',
  'completed',
  'failed',
  'skipped',
  'awaiting',
  'cancelled',
];
const RUN_STATUSES = ['running', 'awaiting', 'completed', 'failed', 'cancelled'];
const FINAL_RUN_STATUSES = new Set(['completed', 'failed', 'cancelled']);
const REFRESH_MS = 4000;
const PAGE_SIZE = 25;
const THROUGHPUT_MINUTES = 30;
const SVG_NS = 'http://www.w3.org/2000/svg';

// The API is served by the process that serves /ui: its root is the page's path without /ui/...
const API_ROOT = window.location.pathname.replace(/\/ui(\/.*)?$/, '');

// ------------------------------------------------------------------------------------ DOM helpers
function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'text') node.textContent = String(value);
    // Through the CSSOM (allowed by a Content-Security-Policy without 'unsafe-inline').
    else if (key === 'style' && typeof value === 'object') {
      for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, String(v));
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);
const $ = (selector, root = document) => root.querySelector(selector);
/** Replace the children of `node` (arrays are flattened, strings become text nodes). */
function fill(node, ...children) {
  node.replaceChildren();
  return build(node, {}, children);
}

function knownTaskStatus(status) {
  return TASK_STATUSES.includes(status) ? status : 'pending';
}

function badge(status, extraClass = '') {
  const safe = /^[a-z-]+$/.test(String(status)) ? status : 'unknown';
  return h(
    'span',
    { class: `badge status-${safe} ${extraClass}`.trim(), 'data-status': status },
    String(status),
  );
}

// ------------------------------------------------------------------------------------ formatting
function parseTime(value) {
  if (value === null || value === undefined || value === '') return null;
  const ms = typeof value === 'number' ? value : Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m ${String(Math.floor(sec % 60)).padStart(2, '0')}s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours}h ${String(min % 60).padStart(2, '0')}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

function formatAge(value) {
  const ms = parseTime(value);
  if (ms === null) return '–';
  const sec = Math.max(0, (Date.now() - ms) / 1000);
  if (sec < 5) return 'just now';
  if (sec < 60) return `${Math.floor(sec)}s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ago`;
  return `${Math.floor(sec / 86400)}d ago`;
}

function formatTime(value) {
  const ms = parseTime(value);
  if (ms === null) return '–';
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

function timeEl(value, text) {
  const ms = parseTime(value);
  if (ms === null) return h('span', { class: 'muted' }, '–');
  return h('time', { datetime: new Date(ms).toISOString(), title: formatTime(ms) }, text ?? formatTime(ms));
}

function runDuration(run) {
  if (typeof run.durationMs === 'number') return run.durationMs;
  const start = parseTime(run.startedAt);
  if (start === null) return null;
  const end = parseTime(run.finishedAt);
  return (end ?? Date.now()) - start;
}

function jsonText(value, limit = 50000) {
  let text;
  try {
    text = JSON.stringify(value, null, 2);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = 'null';
  return text.length > limit ? `${text.slice(0, limit)}\n… (${text.length - limit} more characters)` : text;
}

// ------------------------------------------------------------------------------------ notices
let noticeTimer = null;
function notify(message, { error = false, sticky = false } = {}) {
  const box = $('#notice');
  box.textContent = message;
  box.classList.toggle('is-error', error);
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky)
    noticeTimer = setTimeout(
      () => {
        box.hidden = true;
      },
      error ? 10000 : 5000,
    );
}

// ------------------------------------------------------------------------------------ auth + API
class AuthError extends Error {}
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY) || '';

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === 'string') return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).join('.')}: ${d.msg}`).join('; ');
    }
    return JSON.stringify(body);
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
}

/** A JSON request to the API; a 401 clears the token and shows the prompt (AuthError). */
async function api(path, { method = 'GET', body, signal } = {}) {
  if (!token) {
    promptForToken(false);
    throw new AuthError('no token');
  }
  const used = token;
  const headers = { Accept: 'application/json', ...authHeaders() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(API_ROOT + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
  });
  if (response.status === 401) {
    rejectToken(used);
    throw new AuthError('unauthorized');
  }
  if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
  if (response.status === 204) return null;
  return response.json();
}

/** The API refused `used`: forget it (unless another token was entered meanwhile) and ask again. */
function rejectToken(used) {
  if (used !== token) return;
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  promptForToken(true);
}

function promptForToken(rejected) {
  const dialog = $('#token-dialog');
  if (rejected || !dialog.open) $('#token-error').hidden = !rejected;
  if (!dialog.open) {
    $('#token-input').value = '';
    dialog.showModal();
  }
  $('#token-input').focus();
}

function setupTokenDialog() {
  const dialog = $('#token-dialog');
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('#token-input').value.trim();
    if (!value) return;
    token = value;
    sessionStorage.setItem(TOKEN_KEY, value);
    dialog.close();
    render();
  });
  // Without a token nothing works: Escape does not dismiss the prompt then.
  dialog.addEventListener('cancel', (event) => {
    if (!token) event.preventDefault();
  });
  $('#change-token').addEventListener('click', () => promptForToken(false));
}

/** Report an error of a background task (auth errors already showed the prompt). */
function reportError(err, what) {
  if (err instanceof AuthError || (err && err.name === 'AbortError')) return;
  notify(`${what}: ${err && err.message ? err.message : err}`, { error: true });
}

// ------------------------------------------------------------------------------------ SSE over fetch
/**
 * Read a text/event-stream with fetch (so the Authorization header is sent). Calls
 * onEvent(name, data) per event; resolves when the server ends the stream.
 */
async function readEventStream(path, { signal, onEvent }) {
  const used = token;
  const response = await fetch(API_ROOT + path, {
    headers: { Accept: 'text/event-stream', ...authHeaders() },
    signal,
    cache: 'no-store',
  });
  if (response.status === 401) {
    rejectToken(used);
    throw new AuthError('unauthorized');
  }
  if (!response.ok || !response.body) throw new ApiError(response.status, await errorDetail(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let name = 'message';
  let data = [];
  const dispatch = () => {
    if (data.length) onEvent(name, data.join('\n'));
    name = 'message';
    data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      const width = buffer.startsWith('\r\n', newline) ? 2 : 1;
      buffer = buffer.slice(newline + width);
      if (line === '') dispatch();
      else if (line.startsWith(':')) continue;
      else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let rest = colon < 0 ? '' : line.slice(colon + 1);
        if (rest.startsWith(' ')) rest = rest.slice(1);
        if (field === 'event') name = rest || 'message';
        else if (field === 'data') data.push(rest);
      }
    }
  }
  dispatch();
}

// ------------------------------------------------------------------------------------ routing
// Each view returns a cleanup function; the router calls it when the route changes.
let cleanup = () => {};
let generation = 0;

function parseRoute() {
  const hash = window.location.hash.replace(/^#/, '') || '/runs';
  const [path, query = ''] = hash.split('?');
  const parts = path
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  return { parts, params: new URLSearchParams(query) };
}

function render() {
  cleanup();
  cleanup = () => {};
  generation += 1;
  const main = $('#main');
  if (!token) {
    fill(main, h('p', { class: 'muted' }, 'Sign in with the API token to see runs.'));
    promptForToken(false);
    return;
  }
  const { parts, params } = parseRoute();
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === (parts[0] || 'runs') && parts.length <= 1)
      link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (parts[0] === 'runs' && parts.length >= 2) cleanup = runPage(main, parts.slice(1).join('/'), generation);
  else cleanup = homePage(main, params, generation);
}

/** Repeats `task` every `ms` while the view is current (never overlapping). */
function every(ms, gen, task) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || gen !== generation) return;
    if (!document.hidden) {
      try {
        await task();
      } catch (err) {
        reportError(err, 'Refresh failed');
      }
    }
    if (!stopped && gen === generation) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ------------------------------------------------------------------------------------ home: runs
function homePage(main, params, gen) {
  const filters = {
    status: RUN_STATUSES.includes(params.get('status')) ? params.get('status') : '',
    blueprintId: params.get('blueprintId') || '',
    q: params.get('q') || '',
  };
  // Page size: `limit` in the address (1-200), else PAGE_SIZE.
  const requested = Number.parseInt(params.get('limit') || '', 10);
  const pageSize = requested >= 1 && requested <= 200 ? requested : PAGE_SIZE;
  const cursors = [null]; // cursor of each page seen; the last is the current page
  let nextCursor = null;
  const knownBlueprints = new Set(filters.blueprintId ? [filters.blueprintId] : []);

  const statusSelect = h(
    'select',
    { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'All statuses'),
    RUN_STATUSES.map((st) => h('option', { value: st }, st)),
  );
  statusSelect.value = filters.status;
  const blueprintSelect = h('select', { id: 'filter-blueprint', name: 'blueprintId' });
  const searchInput = h('input', {
    id: 'filter-q',
    type: 'search',
    name: 'q',
    placeholder: 'Run id or blueprint',
    autocomplete: 'off',
  });
  searchInput.value = filters.q;
  const tableBody = h('tbody', { id: 'runs-body' });
  const table = h(
    'table',
    { id: 'runs-table', 'aria-describedby': 'runs-caption', 'aria-busy': 'true' },
    h('caption', { id: 'runs-caption' }, 'Runs, newest first'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Run'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Blueprint'),
        h('th', { scope: 'col' }, 'Started'),
        h('th', { scope: 'col', class: 'num' }, 'Duration'),
      ),
    ),
    tableBody,
  );
  const prevButton = h('button', { type: 'button', id: 'runs-prev', disabled: true }, 'Previous');
  const nextButton = h('button', { type: 'button', id: 'runs-next', disabled: true }, 'Next');
  const updated = h('span', { class: 'muted', 'aria-live': 'off' });
  const queuesBox = h('div', { id: 'queues-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const workersBox = h('div', { id: 'workers-body' }, h('p', { class: 'muted' }, 'Loading…'));

  fill(
    main,
    h(
      'div',
      { class: 'layout-home' },
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'runs-title' },
        h('h1', { id: 'runs-title', tabindex: '-1' }, 'Runs'),
        h(
          'form',
          { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
          h('label', { for: 'filter-status' }, 'Status', statusSelect),
          h('label', { for: 'filter-blueprint' }, 'Blueprint', blueprintSelect),
          h('label', { for: 'filter-q' }, 'Search', searchInput),
        ),
        h('div', { class: 'table-wrap' }, table),
        h('div', { class: 'pager' }, prevButton, nextButton, updated),
      ),
      h(
        'aside',
        { 'aria-label': 'Queues and workers' },
        h(
          'section',
          { class: 'panel', id: 'queues-panel', 'aria-labelledby': 'queues-title' },
          h('h2', { id: 'queues-title' }, 'Queues'),
          queuesBox,
        ),
        h(
          'section',
          { class: 'panel', id: 'workers-panel', 'aria-labelledby': 'workers-title' },
          h('h2', { id: 'workers-title' }, 'Workers'),
          workersBox,
        ),
      ),
    ),
  );

  const renderBlueprintOptions = () => {
    const current = blueprintSelect.value || filters.blueprintId;
    fill(
      blueprintSelect,
      h('option', { value: '' }, 'All blueprints'),
      [...knownBlueprints].sort().map((id) => h('option', { value: id }, id)),
    );
    blueprintSelect.value = current;
  };
  renderBlueprintOptions();

  const syncHash = () => {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
    if (pageSize !== PAGE_SIZE) query.set('limit', String(pageSize));
    const text = query.toString();
    history.replaceState(null, '', `#/runs${text ? `?${text}` : ''}`);
  };

  let loading = null;
  const loadRuns = async () => {
    const query = new URLSearchParams({ limit: String(pageSize) });
    for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set('cursor', cursor);
    const request = api(`/workflows/runs?${query}`);
    loading = request;
    table.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await request;
    } finally {
      if (loading === request) table.setAttribute('aria-busy', 'false');
    }
    if (gen !== generation || loading !== request) return;
    renderRuns(page);
  };

  const renderRuns = (page) => {
    const runs = Array.isArray(page.runs) ? page.runs : [];
    let added = false;
    for (const run of runs) {
      if (run.blueprintId && !knownBlueprints.has(run.blueprintId)) {
        knownBlueprints.add(run.blueprintId);
        added = true;
      }
    }
    if (added) renderBlueprintOptions();
    // Keep the keyboard focus on the same run's link across refreshes.
    const focused =
      document.activeElement && tableBody.contains(document.activeElement)
        ? document.activeElement.closest('tr')?.dataset.runId
        : null;
    if (!runs.length) {
      const text = cursors.length > 1 ? 'No more runs.' : 'No runs match.';
      fill(tableBody, h('tr', {}, h('td', { colspan: '5', class: 'muted' }, text)));
    } else {
      fill(
        tableBody,
        runs.map((run) =>
          h(
            'tr',
            { 'data-run-id': run.runId, 'data-status': run.status },
            h(
              'td',
              {},
              h('a', { class: 'run-id', href: `#/runs/${encodeURIComponent(run.runId)}` }, run.runId),
            ),
            h('td', {}, badge(run.status)),
            h('td', {}, run.blueprintId ?? ''),
            h('td', {}, timeEl(run.startedAt, formatAge(run.startedAt))),
            h('td', { class: 'num' }, formatDuration(runDuration(run))),
          ),
        ),
      );
    }
    if (focused) {
      const row = [...tableBody.querySelectorAll('tr[data-run-id]')].find((r) => r.dataset.runId === focused);
      if (row) row.querySelector('a').focus({ preventScroll: true });
    }
    nextCursor = page.nextCursor || null;
    nextButton.disabled = !nextCursor;
    prevButton.disabled = cursors.length <= 1;
    updated.textContent = `Page ${cursors.length} · updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`;
  };

  const reload = () => {
    cursors.length = 1;
    loadRuns().catch((err) => reportError(err, 'Loading runs failed'));
  };
  statusSelect.addEventListener('change', () => {
    filters.status = statusSelect.value;
    syncHash();
    reload();
  });
  blueprintSelect.addEventListener('change', () => {
    filters.blueprintId = blueprintSelect.value;
    syncHash();
    reload();
  });
  let searchTimer = null;
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filters.q = searchInput.value.trim();
      syncHash();
      reload();
    }, 300);
  });
  nextButton.addEventListener('click', () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadRuns().catch((err) => reportError(err, 'Loading runs failed'));
  });
  prevButton.addEventListener('click', () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    loadRuns().catch((err) => reportError(err, 'Loading runs failed'));
  });

  const loadBlueprints = async () => {
    const body = await api('/workflows');
    if (gen !== generation) return;
    for (const wf of body.workflows || []) if (wf && typeof wf.id === 'string') knownBlueprints.add(wf.id);
    renderBlueprintOptions();
  };
  const loadQueues = async () => {
    const body = await api('/queues');
    if (gen !== generation) return;
    fill(queuesBox, queuesPanel(body));
  };
  const loadWorkers = async () => {
    const body = await api('/workers');
    if (gen !== generation) return;
    fill(workersBox, workersPanel(body));
  };
  const panelError = (box, what) => (err) => {
    if (err instanceof AuthError) return;
    fill(box, h('p', { class: 'error' }, `${what} unavailable: ${err.message}`));
  };

  loadRuns().catch((err) => reportError(err, 'Loading runs failed'));
  loadBlueprints().catch(() => {});
  loadQueues().catch(panelError(queuesBox, 'Queues'));
  loadWorkers().catch(panelError(workersBox, 'Workers'));
  $('#runs-title').focus({ preventScroll: true });

  const stops = [
    every(REFRESH_MS, gen, loadRuns),
    every(REFRESH_MS, gen, () => loadQueues().catch(panelError(queuesBox, 'Queues'))),
    every(REFRESH_MS, gen, () => loadWorkers().catch(panelError(workersBox, 'Workers'))),
  ];
  return () => {
    clearTimeout(searchTimer);
    stops.forEach((stop) => stop());
  };
}

function queuesPanel(body) {
  const queues = Array.isArray(body.queues) ? body.queues : [];
  const out = [];
  if (!queues.length) out.push(h('p', { class: 'muted' }, 'No queues.'));
  const fields = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'];
  for (const queue of queues) {
    out.push(
      h(
        'div',
        { class: 'queue-card', 'data-queue': queue.name },
        h('h3', {}, h('code', {}, queue.name ?? '')),
        h(
          'dl',
          { class: 'counts' },
          fields
            .filter((f) => f in queue)
            .map((f) => h('div', { 'data-count': f }, h('dt', {}, f), h('dd', {}, String(queue[f] ?? 0)))),
        ),
      ),
    );
  }
  out.push(throughputChart(Array.isArray(body.throughput) ? body.throughput : []));
  return out;
}

/** Nodes completed per minute over the last minutes, as a small bar chart. */
function throughputChart(points) {
  const recent = points.slice(-THROUGHPUT_MINUTES);
  const total = recent.reduce((sum, p) => sum + (Number(p.nodes) || 0), 0);
  const max = Math.max(1, ...recent.map((p) => Number(p.nodes) || 0));
  const width = 300;
  const height = 64;
  const slot = width / THROUGHPUT_MINUTES;
  const offset = (THROUGHPUT_MINUTES - recent.length) * slot;
  const label = `Throughput: ${total} nodes completed in the last ${recent.length || THROUGHPUT_MINUTES} minutes`;
  const chart = s(
    'svg',
    {
      class: 'throughput',
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': label,
    },
    s('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }),
    recent.map((p, i) => {
      const n = Number(p.nodes) || 0;
      const barHeight = n ? Math.max(2, (n / max) * (height - 4)) : 1;
      const minute = parseTime(p.minute);
      const when =
        minute === null
          ? ''
          : new Date(minute).toLocaleTimeString(undefined, {
              hour: '2-digit',
              minute: '2-digit',
              hour12: false,
            });
      return s(
        'rect',
        {
          class: n ? 'bar' : 'bar zero',
          x: (offset + i * slot + 1).toFixed(1),
          y: (height - barHeight).toFixed(1),
          width: Math.max(1, slot - 2).toFixed(1),
          height: barHeight.toFixed(1),
        },
        s('title', {}, `${when}: ${n} nodes`),
      );
    }),
  );
  return h(
    'figure',
    { class: 'throughput-figure' },
    h(
      'figcaption',
      { class: 'small muted' },
      `Nodes completed per minute (last ${THROUGHPUT_MINUTES} min): ${total}`,
    ),
    chart,
    h(
      'div',
      { class: 'axis small muted', 'aria-hidden': 'true' },
      h('span', {}, `−${THROUGHPUT_MINUTES} min`),
      h('span', {}, 'now'),
    ),
  );
}

function workersPanel(body) {
  const workers = Array.isArray(body.workers) ? body.workers : [];
  if (!workers.length) return h('p', { class: 'muted' }, 'No live workers.');
  return h(
    'div',
    {},
    h('p', { class: 'small muted' }, `${workers.length} live worker${workers.length === 1 ? '' : 's'}`),
    h(
      'ul',
      { class: 'worker-list', id: 'workers-list' },
      workers.map((w) =>
        h(
          'li',
          { 'data-worker-id': w.id },
          h('div', { class: 'run-id' }, w.id ?? ''),
          h(
            'dl',
            { class: 'worker-facts' },
            [
              ['Kind', w.kind ?? ''],
              ['Host', w.host ?? ''],
              ['Pid', String(w.pid ?? '')],
              ['Queue', w.queue ?? ''],
              ['Concurrency', String(w.concurrency ?? '')],
              ['Processed', String(w.processed ?? '')],
              ['Last seen', timeEl(w.lastSeen, formatAge(w.lastSeen))],
            ].map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value))),
          ),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------------------------------ run page
function runPage(main, runId, gen) {
  const path = `/workflows/runs/${encodeURIComponent(runId)}`;
  const controller = new AbortController();
  let view = null;
  let selected = null;
  let pollStop = null;
  const rects = new Map(); // nodeId -> <rect>

  const statusBadge = h(
    'span',
    { id: 'run-status', class: 'badge large status-unknown', 'data-status': '', role: 'status' },
    '…',
  );
  const cancelButton = h(
    'button',
    { type: 'button', id: 'cancel-run', class: 'danger', hidden: true },
    'Cancel run',
  );
  const resumeButton = h(
    'button',
    { type: 'button', id: 'resume-run', class: 'primary', hidden: true },
    'Resume…',
  );
  const summary = h('dl', { class: 'summary-facts', id: 'run-summary' });
  const graphBox = h(
    'div',
    { class: 'dag-wrap', id: 'dag' },
    h('p', { class: 'muted pad' }, 'Loading graph…'),
  );
  const detailBox = h(
    'div',
    { id: 'node-detail' },
    h(
      'p',
      { class: 'muted' },
      'Select a node in the graph to see its input, output, error, attempts and timings.',
    ),
  );
  const tasksBody = h('tbody', { id: 'tasks-body' });
  const logList = h('ol', { class: 'log-list', id: 'run-log' });
  const resumeBox = h('div', { id: 'resume-box', hidden: true });

  fill(
    main,
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/runs' }, '← All runs')),
    h(
      'div',
      { class: 'run-header' },
      h('h1', { tabindex: '-1', id: 'run-title' }, 'Run ', h('span', { class: 'run-id' }, runId)),
      statusBadge,
      h('div', { class: 'run-actions' }, cancelButton, resumeButton),
    ),
    resumeBox,
    summary,
    h(
      'div',
      { class: 'layout-run' },
      h(
        'section',
        { class: 'panel full', 'aria-labelledby': 'graph-title' },
        h('h2', { id: 'graph-title' }, 'Graph'),
        graphBox,
        h(
          'ul',
          { class: 'legend', 'aria-label': 'Status colours' },
          TASK_STATUSES.map((st) => h('li', {}, h('span', { class: `swatch status-${st}` }), st)),
        ),
      ),
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'detail-title' },
        h('h2', { id: 'detail-title' }, 'Node details'),
        detailBox,
      ),
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'log-title' },
        h('h2', { id: 'log-title' }, 'Run log'),
        logList,
      ),
      h(
        'section',
        { class: 'panel full', 'aria-labelledby': 'tasks-title' },
        h('h2', { id: 'tasks-title' }, 'Tasks'),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { id: 'tasks-table', class: 'small' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Node', 'Uses', 'Status', 'Attempts', 'Started', 'Duration'].map((t, i) =>
                  h('th', { scope: 'col', class: i === 3 || i === 5 ? 'num' : null }, t),
                ),
              ),
            ),
            tasksBody,
          ),
        ),
      ),
    ),
  );
  $('#run-title').focus({ preventScroll: true });

  // ---- the graph
  const drawGraph = (blueprint) => {
    const graph = graphOf(blueprint);
    if (!graph.nodes.length) {
      fill(graphBox, h('p', { class: 'muted pad' }, 'The blueprint has no nodes.'));
      return;
    }
    const layout = layoutDag(graph);
    const svgEl = s(
      'svg',
      {
        class: 'dag',
        id: 'dag-svg',
        width: Math.ceil(layout.width),
        height: Math.ceil(layout.height),
        // Shrinks to fit the panel down to 60% of its natural size; scrolls below that.
        style: {
          width: '100%',
          'max-width': `${Math.ceil(layout.width)}px`,
          'min-width': `${Math.ceil(layout.width * 0.6)}px`,
          height: 'auto',
        },
        viewBox: `0 0 ${Math.ceil(layout.width)} ${Math.ceil(layout.height)}`,
        role: 'group',
        'aria-label': `Graph of blueprint ${blueprint.id ?? ''}: ${graph.nodes.length} nodes`,
      },
      s(
        'defs',
        {},
        s(
          'marker',
          {
            id: 'dag-arrow',
            viewBox: '0 0 10 10',
            refX: '9',
            refY: '5',
            markerWidth: '7',
            markerHeight: '7',
            orient: 'auto-start-reverse',
          },
          s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }),
        ),
      ),
    );
    const edgeLayer = s('g', { class: 'edges', 'aria-hidden': 'true' });
    const labelLayer = s('g', { class: 'edge-labels', 'aria-hidden': 'true' });
    for (const edge of layout.edges) {
      edgeLayer.append(
        s(
          'path',
          {
            class: edge.back ? 'edge back-edge' : 'edge',
            d: edge.path,
            'marker-end': 'url(#dag-arrow)',
            'data-source': edge.source,
            'data-target': edge.target,
          },
          s(
            'title',
            {},
            `${edge.source} → ${edge.target}${edge.action ? ` [${edge.action}]` : ''}${edge.condition ? ` if ${edge.condition}` : ''}`,
          ),
        ),
      );
      const text = [edge.action, edge.condition ? `if ${edge.condition}` : null].filter(Boolean).join(' · ');
      if (text) {
        labelLayer.append(
          s(
            'text',
            { class: 'edge-label', x: edge.label.x, y: edge.label.y - 4, 'text-anchor': 'middle' },
            text.length > 28 ? `${text.slice(0, 27)}…` : text,
          ),
        );
      }
    }
    const nodeLayer = s('g', { class: 'nodes' });
    rects.clear();
    for (const node of layout.nodes) {
      const rect = s('rect', {
        x: node.x,
        y: node.y,
        width: node.width,
        height: node.height,
        rx: 8,
        'data-node-id': node.id,
        'data-status': 'pending',
        class: 'status-pending',
      });
      const title = node.id.length > 22 ? `${node.id.slice(0, 21)}…` : node.id;
      const uses = node.uses.length > 26 ? `${node.uses.slice(0, 25)}…` : node.uses;
      const group = s(
        'g',
        {
          class: 'dag-node is-pending',
          tabindex: '0',
          role: 'button',
          'aria-label': `${node.id} (${node.uses}): pending`,
        },
        s('title', {}, `${node.id} (${node.uses})`),
        rect,
        s('text', { class: 'node-title', x: node.x + 12, y: node.y + 22 }, title),
        s('text', { class: 'node-uses', x: node.x + 12, y: node.y + 40 }, uses),
      );
      group.addEventListener('click', () => selectNode(node.id));
      group.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          selectNode(node.id);
        }
      });
      rects.set(node.id, rect);
      nodeLayer.append(group);
    }
    svgEl.append(edgeLayer, nodeLayer, labelLayer);
    fill(graphBox, svgEl);
    if (view) paintNodes(view);
  };

  const paintNodes = (run) => {
    const byNode = new Map((run.tasks || []).map((t) => [t.nodeId, t]));
    for (const [nodeId, rect] of rects) {
      const task = byNode.get(nodeId);
      const status = knownTaskStatus(task ? task.status : 'pending');
      if (rect.getAttribute('data-status') === status) continue;
      rect.setAttribute('data-status', status);
      rect.setAttribute('class', `status-${status}`);
      const group = rect.parentNode;
      group.setAttribute('class', `dag-node is-${status}${selected === nodeId ? ' is-selected' : ''}`);
      group.setAttribute('aria-label', `${nodeId} (${task ? task.uses : ''}): ${status}`);
    }
  };

  // ---- the run's state
  const fact = (label, value, id) => h('div', {}, h('dt', {}, label), h('dd', id ? { id } : {}, value));
  const update = (run) => {
    const previous = view;
    view = run;
    const status = String(run.status ?? '');
    statusBadge.textContent = status;
    statusBadge.setAttribute('data-status', status);
    statusBadge.setAttribute('class', `badge large status-${/^[a-z-]+$/.test(status) ? status : 'unknown'}`);
    cancelButton.hidden = status !== 'running';
    resumeButton.hidden = status !== 'awaiting';
    if (status !== 'awaiting') resumeBox.hidden = true;
    fill(
      summary,
      ...[
        fact('Blueprint', run.blueprintId ?? '–'),
        fact('Version', run.blueprintVersion ?? '–'),
        fact('Started', timeEl(run.startedAt)),
        fact('Finished', timeEl(run.finishedAt)),
        fact('Duration', formatDuration(runDuration(run)), 'run-duration'),
        run.reason ? fact('Reason', run.reason, 'run-reason') : null,
      ].filter(Boolean),
    );
    paintNodes(run);
    fill(
      tasksBody,
      ...(run.tasks || []).map((t) =>
        h(
          'tr',
          { 'data-task-node': t.nodeId, 'data-status': t.status },
          h(
            'td',
            {},
            h(
              'button',
              { type: 'button', class: 'link-button', onclick: () => selectNode(t.nodeId) },
              t.nodeId,
            ),
          ),
          h('td', {}, h('code', {}, t.uses ?? '')),
          h('td', {}, badge(t.status)),
          h('td', { class: 'num' }, String(t.attempts ?? 0)),
          h('td', {}, timeEl(t.startedAt)),
          h('td', { class: 'num' }, formatDuration(taskDuration(t))),
        ),
      ),
    );
    const logs = run.logs || [];
    fill(
      logList,
      ...(logs.length
        ? logs.map((entry) =>
            h(
              'li',
              { 'data-log-type': entry.type },
              timeEl(
                entry.timestamp,
                new Date(parseTime(entry.timestamp) ?? 0).toLocaleTimeString(undefined, { hour12: false }),
              ),
              h(
                'span',
                { class: `log-type${/failed|cancelled/.test(entry.type) ? ' is-error' : ''}` },
                entry.type,
                entry.nodeId ? h('span', { class: 'muted' }, ` · ${entry.nodeId}`) : null,
              ),
              h('span', {}, entry.message ?? ''),
            ),
          )
        : [h('li', { class: 'muted' }, 'No log entries yet.')]),
    );
    if (selected && previous) {
      const before = (previous.tasks || []).find((t) => t.nodeId === selected);
      const after = (run.tasks || []).find((t) => t.nodeId === selected);
      if (JSON.stringify(before) !== JSON.stringify(after)) selectNode(selected, { quiet: true });
    }
  };

  // ---- node details
  let detailRequest = 0;
  const selectNode = async (nodeId, { quiet = false } = {}) => {
    selected = nodeId;
    for (const [id, rect] of rects) {
      const group = rect.parentNode;
      group.classList.toggle('is-selected', id === nodeId);
    }
    const request = ++detailRequest;
    if (!quiet) fill(detailBox, h('p', { class: 'muted' }, `Loading ${nodeId}…`));
    try {
      const detail = await api(`${path}/tasks/${encodeURIComponent(nodeId)}`, { signal: controller.signal });
      if (request !== detailRequest || gen !== generation) return;
      fill(detailBox, nodeDetail(nodeId, detail));
    } catch (err) {
      if (
        request !== detailRequest ||
        gen !== generation ||
        err instanceof AuthError ||
        err.name === 'AbortError'
      )
        return;
      if (err instanceof ApiError && err.status === 404) {
        fill(
          detailBox,
          h('h3', {}, nodeId),
          h('p', { class: 'muted' }, 'This node has no task record yet: it has not been scheduled.'),
        );
      } else fill(detailBox, h('p', { class: 'error' }, `Could not load ${nodeId}: ${err.message}`));
    }
  };

  // ---- actions
  cancelButton.addEventListener('click', async () => {
    cancelButton.disabled = true;
    try {
      const result = await api(`${path}/cancel`, {
        method: 'POST',
        body: { reason: 'cancelled in the dashboard' },
      });
      notify(
        result && result.cancelled
          ? 'Cancellation requested.'
          : `Not cancelled: the run is ${result ? result.status : 'finished'}.`,
      );
      await refresh();
    } catch (err) {
      reportError(err, 'Cancel failed');
    } finally {
      cancelButton.disabled = false;
    }
  });
  resumeButton.addEventListener('click', () => {
    if (!resumeBox.hidden) {
      resumeBox.hidden = true;
      return;
    }
    const awaiting = (view && view.tasks ? view.tasks : []).filter((t) => t.status === 'awaiting');
    const nodeSelect = h(
      'select',
      { id: 'resume-node' },
      h('option', { value: '' }, 'Any awaiting node'),
      awaiting.map((t) => h('option', { value: t.nodeId }, t.nodeId)),
    );
    const payload = h('textarea', {
      id: 'resume-payload',
      spellcheck: 'false',
      placeholder: '{"approved": true}',
    });
    const action = h('input', { id: 'resume-action', type: 'text', autocomplete: 'off' });
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Resume run');
    const form = h(
      'form',
      { class: 'panel resume-form', 'aria-label': 'Resume the run' },
      h('label', { for: 'resume-node' }, 'Node', nodeSelect),
      h('label', { for: 'resume-payload' }, "Output (JSON; empty keeps the node's own)", payload),
      h('label', { for: 'resume-action' }, 'Action (optional: chooses the outgoing edges)', action),
      error,
      h('div', {}, submit),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const body = {};
      if (payload.value.trim()) {
        try {
          body.payload = JSON.parse(payload.value);
        } catch (err) {
          error.textContent = `The output is not valid JSON: ${err.message}`;
          error.hidden = false;
          return;
        }
      }
      if (nodeSelect.value) body.nodeId = nodeSelect.value;
      if (action.value.trim()) body.action = action.value.trim();
      submit.disabled = true;
      try {
        const result = await api(`${path}/resume`, { method: 'POST', body });
        notify(`Resumed: the run is ${result && result.status ? result.status : 'running'}.`);
        resumeBox.hidden = true;
        await refresh();
        startLive();
      } catch (err) {
        if (!(err instanceof AuthError)) {
          error.textContent = `Resume failed: ${err.message}`;
          error.hidden = false;
        }
      } finally {
        submit.disabled = false;
      }
    });
    fill(resumeBox, form);
    resumeBox.hidden = false;
    nodeSelect.focus();
  });

  // ---- loading and live updates
  const refresh = async () => {
    const run = await api(`${path}/status`, { signal: controller.signal });
    if (gen === generation) update(run);
    return run;
  };

  let live = false;
  const startLive = () => {
    if (live || gen !== generation || !view || FINAL_RUN_STATUSES.has(view.status)) return;
    live = true;
    (async () => {
      let failures = 0;
      while (gen === generation && view && !FINAL_RUN_STATUSES.has(view.status)) {
        try {
          await readEventStream(`${path}/events`, {
            signal: controller.signal,
            onEvent: (name, data) => {
              if (name !== 'status' && name !== 'message') return;
              let run;
              try {
                run = JSON.parse(data);
              } catch {
                return;
              }
              if (gen === generation && run && typeof run === 'object' && run.status) update(run);
              failures = 0;
            },
          });
          // The stream ended: after a final status, or the server closed it; check and go on.
          await refresh();
        } catch (err) {
          if (err instanceof AuthError || err.name === 'AbortError' || gen !== generation) break;
          failures += 1;
          if (failures >= 3) {
            // The event stream keeps failing: poll the status instead.
            pollStop = every(2000, gen, async () => {
              const run = await refresh();
              if (FINAL_RUN_STATUSES.has(run.status) && pollStop) pollStop();
            });
            break;
          }
        }
        if (gen === generation && view && !FINAL_RUN_STATUSES.has(view.status)) {
          await new Promise((resolve) => setTimeout(resolve, 500 + 1000 * failures));
        }
      }
      live = false;
    })();
  };

  (async () => {
    try {
      const [run, blueprint] = await Promise.all([
        api(`${path}/status`, { signal: controller.signal }),
        api(`${path}/blueprint`, { signal: controller.signal }),
      ]);
      if (gen !== generation) return;
      update(run);
      drawGraph(blueprint);
      startLive();
    } catch (err) {
      if (gen !== generation || err instanceof AuthError || err.name === 'AbortError') return;
      const message =
        err instanceof ApiError && err.status === 404
          ? `Run ${runId} was not found.`
          : `Could not load the run: ${err.message}`;
      fill(graphBox, h('p', { class: 'error pad' }, message));
      statusBadge.textContent = 'unknown';
      statusBadge.setAttribute('data-status', 'unknown');
    }
  })();

  return () => {
    controller.abort();
    if (pollStop) pollStop();
  };
}

function taskDuration(task) {
  const start = parseTime(task.startedAt);
  if (start === null) return null;
  const end = parseTime(task.completedAt);
  if (end === null) return task.status === 'running' ? Date.now() - start : null;
  return end - start;
}

function nodeDetail(nodeId, detail) {
  const fields = [
    ['Uses', h('code', {}, detail.uses ?? '')],
    ['Status', badge(detail.status ?? 'pending')],
    ['Attempts', String(detail.attempts ?? 0)],
    ['Iteration', String(detail.iteration ?? 0)],
    ['Started', timeEl(detail.startedAt)],
    ['Completed', timeEl(detail.completedAt)],
    ['Duration', formatDuration(taskDuration(detail))],
  ];
  return h(
    'div',
    { 'data-detail-node': nodeId, class: 'node-detail' },
    h('h3', {}, nodeId),
    h(
      'dl',
      { class: 'facts' },
      fields.map(([label, value]) => [h('dt', {}, label), h('dd', {}, value)]),
    ),
    detail.error
      ? [h('h3', {}, 'Error'), h('pre', { class: 'json error', id: 'node-error' }, String(detail.error))]
      : null,
    h('h3', {}, 'Input'),
    h('pre', { class: 'json', id: 'node-input' }, jsonText(detail.input ?? null)),
    h('h3', {}, 'Output'),
    h('pre', { class: 'json', id: 'node-output' }, jsonText(detail.output ?? null)),
  );
}

// ------------------------------------------------------------------------------------ start
setupTokenDialog();
window.addEventListener('hashchange', render);
render();
