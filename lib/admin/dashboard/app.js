// The llm-proxy dashboard: one page, hash routes (#/usage, #/keys, …), plain
// DOM code, no framework and no build step. It talks to the admin REST API
// (/admin/api/…, Authorization: Bearer <sign-in token or master key>) and, in
// the playground, to /v1/… with a virtual key. Everything shown is built with
// textContent / DOM nodes, never from HTML strings.

const TOKEN = 'llm-proxy.token';
const EXPIRES = 'llm-proxy.expires';
const DEFAULT_ROUTE = 'usage';
const PROVIDERS = ['openai', 'azure', 'anthropic', 'google', 'bedrock', 'ollama', 'vllm',
  'llamacpp', 'openai-compatible', 'template', 'mock'];
const WINDOWS = ['minute', 'hour', 'day', 'month', 'total'];

const state = {
  token: sessionStorage.getItem(TOKEN),
  me: null, // { username, role }
  playground: { key: '', models: [], model: '', prompt: '' },
};

const isAdmin = () => state.me?.role === 'admin';

// ---------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------

// h('button', { class: 'x', onclick: fn, 'aria-label': '…' }, 'text', child…)
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.setAttribute('class', value);
    } else if (name === 'value' && 'value' in el) {
      el.value = value;
    } else if (name === 'checked' || name === 'selected' || name === 'disabled') {
      el[name] = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

// A labelled form field; `input` is the control element. The hint describes
// the control (aria-describedby) without becoming part of its name.
function field(labelText, input, hint) {
  if (!input.id) input.id = nextId('field');
  let note = null;
  if (hint) {
    note = h('span', { class: 'hint', id: nextId('hint') }, hint);
    input.setAttribute('aria-describedby', note.id);
  }
  return h('div', { class: 'field' }, h('label', { for: input.id }, labelText), input, note);
}

function select(name, options, value, props) {
  return h('select', { name, ...props },
    options.map((o) => {
      const opt = typeof o === 'string' ? { value: o, label: o } : o;
      if (opt.group) {
        return h('optgroup', { label: opt.group },
          opt.options.map((x) => h('option', { value: x.value, selected: x.value === value }, x.label)));
      }
      return h('option', { value: opt.value, selected: opt.value === value }, opt.label);
    }));
}

function table(caption, columns, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', null,
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, columns.map((c) =>
        h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
      h('tbody', null, rows)));
}

function pageHead(title, lead, ...tools) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'lead' }, h('h1', null, title), lead ? h('p', null, lead) : null),
    tools.length ? h('div', { class: 'toolbar' }, tools) : null);
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

const fmtInt = (n) => (n ?? 0).toLocaleString('en-US', { maximumFractionDigits: 0 });
const fmtNum = (n, digits = 2) => (n ?? 0).toLocaleString('en-US', { maximumFractionDigits: digits });
function fmtCost(n) {
  const v = n ?? 0;
  if (v === 0) return '$0';
  if (v < 0.01) return `$${v.toPrecision(2)}`;
  return `$${v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}
function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms >= 10000) return `${fmtNum(ms / 1000, 1)} s`;
  if (ms >= 1000) return `${fmtNum(ms / 1000, 2)} s`;
  return `${fmtNum(ms, ms < 10 ? 1 : 0)} ms`;
}
function fmtPercent(part, whole) {
  if (!whole) return '0%';
  const p = (100 * part) / whole;
  return `${fmtNum(p, p < 10 ? 1 : 0)}%`;
}
function fmtCompact(n) {
  const v = n ?? 0;
  if (Math.abs(v) >= 1e9) return `${fmtNum(v / 1e9, 1)}B`;
  if (Math.abs(v) >= 1e6) return `${fmtNum(v / 1e6, 1)}M`;
  if (Math.abs(v) >= 1e3) return `${fmtNum(v / 1e3, 1)}k`;
  return fmtNum(v, 2);
}
function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ---------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message, retryAfter) {
    super(message);
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

async function request(url, { method = 'GET', body, token, signal } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {
      method, headers, signal, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `The server cannot be reached (${e.message}).`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.ok) return data;
  throw new ApiError(res.status, data?.error?.type ?? data?.error?.code ?? 'error',
    data?.error?.message ?? `HTTP ${res.status} ${res.statusText}`, res.headers.get('Retry-After'));
}

// An admin API call with the signed-in token. A 401 means the token expired
// or was revoked: back to the sign-in page. A 403 (a viewer, or a role changed
// meanwhile) is reported and the role re-read.
async function api(method, path, body) {
  try {
    return await request(`/admin/api${path}`, { method, body, token: state.token });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut('Your session has expired or is no longer valid. Please sign in again.');
      e.handled = true;
    } else if (e instanceof ApiError && e.status === 403) {
      refreshMe();
    }
    throw e;
  }
}

// Reports an error of an action (not 401s, which already went to sign-in).
function report(e) {
  if (e?.handled) return;
  if (e instanceof ApiError && e.status === 403) {
    notify(`Not allowed: ${e.message}`, 'error');
  } else {
    notify(e?.message ?? String(e), 'error');
  }
}

async function refreshMe() {
  try {
    const me = await request('/admin/api/me', { token: state.token });
    const changed = me?.role !== state.me?.role;
    state.me = me;
    if (changed) route();
  } catch {
    /* a 401 is handled by the next call */
  }
}

// ---------------------------------------------------------------------------
// Notices, dialogs
// ---------------------------------------------------------------------------

function notify(message, kind = 'ok') {
  const box = document.getElementById('notices');
  const note = h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', null, message),
    h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Dismiss', onclick: () => note.remove() }, '×'));
  box.append(note);
  setTimeout(() => note.remove(), kind === 'error' ? 10000 : 5000);
}

// A modal dialog; resolves with what `onSubmit` returns (undefined when
// cancelled). onSubmit(form) may throw to keep the dialog open with the error.
function dialog({ title, body, submitLabel = 'Save', danger = false, onSubmit, cancelLabel = 'Cancel' }) {
  return new Promise((resolve) => {
    const titleId = nextId('dialog-title');
    const error = h('p', { class: 'error-text', role: 'alert' });
    const submit = h('button', { type: 'submit', class: danger ? 'danger solid' : null }, submitLabel);
    const form = h('form', { method: 'dialog', novalidate: true },
      h('h2', { id: titleId }, title),
      body,
      error,
      h('div', { class: 'form-actions' },
        cancelLabel ? h('button', { type: 'button', class: 'secondary', onclick: () => close(undefined) }, cancelLabel) : null,
        submit));
    const dlg = h('dialog', { 'aria-labelledby': titleId }, form);
    let done = false;
    function close(value) {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(value);
    }
    dlg.addEventListener('cancel', (ev) => {
      ev.preventDefault();
      close(undefined);
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      error.textContent = '';
      submit.disabled = true;
      try {
        const value = onSubmit ? await onSubmit(form) : true;
        close(value ?? true);
      } catch (e) {
        if (e?.handled) {
          close(undefined);
          return;
        }
        error.textContent = e?.message ?? String(e);
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector('input:not([type=hidden]):not([readonly]), select, textarea');
    (first ?? submit).focus();
  });
}

const confirmAction = (title, text, label, danger = true) =>
  dialog({ title, body: h('p', null, text), submitLabel: label, danger });

// Shows a key that exists only now (creation, rotation), with a copy button.
function showSecret(title, key, name) {
  const input = h('input', { readonly: true, value: key, 'aria-label': 'New key', spellcheck: 'false' });
  const copy = h('button', {
    type: 'button', class: 'secondary',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(key);
      } catch {
        input.select();
        document.execCommand('copy');
      }
      copy.textContent = 'Copied';
    },
  }, 'Copy');
  return dialog({
    title,
    body: [
      h('p', null, 'The key of ', h('strong', null, name), ':'),
      h('div', { class: 'secret-row' }, input, copy),
      h('p', { class: 'callout' }, 'Copy it now: it is shown only once. Only its SHA-256 is stored.'),
    ],
    submitLabel: 'Done',
    cancelLabel: null,
  });
}

// ---------------------------------------------------------------------------
// Session and routing
// ---------------------------------------------------------------------------

let pendingRoute = null; // where to go after signing in
let signInReason = '';

function signOut(reason = '') {
  state.token = null;
  state.me = null;
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(EXPIRES);
  signInReason = reason;
  const current = currentRoute();
  if (current !== 'login') pendingRoute = current;
  if (location.hash === '#/login') route();
  else location.hash = '#/login';
}

function signedIn(token, me, expiresAt) {
  state.token = token;
  state.me = me;
  sessionStorage.setItem(TOKEN, token);
  if (expiresAt) sessionStorage.setItem(EXPIRES, expiresAt);
  else sessionStorage.removeItem(EXPIRES);
  signInReason = '';
  const target = pendingRoute && pendingRoute !== 'login' ? pendingRoute : DEFAULT_ROUTE;
  pendingRoute = null;
  if (location.hash === `#/${target}`) route();
  else location.hash = `#/${target}`;
}

function currentRoute() {
  return location.hash.replace(/^#\/?/, '').split(/[?/]/)[0] || DEFAULT_ROUTE;
}

const pages = {
  usage: { title: 'Usage', render: renderUsage },
  keys: { title: 'Keys', render: renderKeys },
  plans: { title: 'Plans', render: renderPlans },
  models: { title: 'Models', render: renderModels },
  connections: { title: 'Connections', render: renderConnections },
  slow: { title: 'Slow requests', render: renderSlow },
  playground: { title: 'Playground', render: renderPlayground },
};

let routeSeq = 0;

async function route() {
  const seq = ++routeSeq;
  let name = currentRoute();
  const expires = sessionStorage.getItem(EXPIRES);
  if (state.token && expires && Date.parse(expires) <= Date.now()) {
    signOut('Your session has expired. Please sign in again.');
    return;
  }
  if (!state.token) {
    if (name !== 'login') {
      pendingRoute = name;
      location.hash = '#/login';
      return;
    }
    showLogin();
    return;
  }
  if (name === 'login') {
    location.hash = `#/${DEFAULT_ROUTE}`;
    return;
  }
  if (!pages[name]) name = DEFAULT_ROUTE;
  if (!state.me) {
    try {
      state.me = await request('/admin/api/me', { token: state.token });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        signOut('Your session has expired or is no longer valid. Please sign in again.');
      } else {
        showFatal(e);
      }
      return;
    }
    if (seq !== routeSeq) return;
  }
  showShell(name);
  const main = document.getElementById('main');
  const view = h('div', { class: `page page-${name}` });
  main.replaceChildren(view);
  document.title = `${pages[name].title} · llm-proxy`;
  try {
    await pages[name].render(view);
  } catch (e) {
    if (e?.handled || !view.isConnected) return;
    view.append(h('p', { class: 'error-text', role: 'alert' }, `Could not load this page: ${e.message}`));
  }
}

function showShell(name) {
  const bar = document.getElementById('topbar');
  bar.hidden = false;
  for (const a of bar.querySelectorAll('nav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const who = document.getElementById('who');
  who.replaceChildren(
    state.me?.username ?? 'master key', ' ',
    h('span', { class: 'role-badge' }, state.me?.role === 'viewer' ? 'viewer · read-only' : 'admin'));
}

function showFatal(e) {
  document.getElementById('topbar').hidden = true;
  document.getElementById('main').replaceChildren(
    h('div', { class: 'card login' },
      h('h1', null, 'The dashboard cannot load'),
      h('p', { role: 'alert' }, e?.message ?? String(e)),
      h('button', { type: 'button', onclick: () => route() }, 'Try again')));
}

// ---------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------

function showLogin() {
  document.getElementById('topbar').hidden = true;
  document.title = 'Sign in · llm-proxy';
  const username = h('input', { name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error-text', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', null,
    field('Username', username), field('Password', password), submit, error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      const r = await request('/admin/api/login', {
        method: 'POST', body: { username: username.value, password: password.value },
      });
      signedIn(r.token, { username: r.username, role: r.role }, r.expires_at);
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) {
        const wait = e.retryAfter ? ` Try again in ${e.retryAfter} s.` : '';
        error.textContent = `Too many failed attempts.${wait}`;
      } else if (e instanceof ApiError && e.status === 401) {
        error.textContent = 'Wrong user name or password.';
        password.select();
      } else {
        error.textContent = e.message;
      }
    } finally {
      submit.disabled = false;
    }
  });

  const master = h('input', { name: 'master-key', type: 'password', autocomplete: 'off', required: true });
  const masterError = h('p', { class: 'error-text', role: 'alert' });
  const masterSubmit = h('button', { type: 'submit', class: 'secondary' }, 'Sign in with master key');
  const masterForm = h('form', null,
    field('Master key', master, 'The --master-key of llm-proxy serve; kept in this tab only.'),
    masterSubmit, masterError);
  masterForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    masterError.textContent = '';
    masterSubmit.disabled = true;
    try {
      const me = await request('/admin/api/me', { token: master.value });
      signedIn(master.value, me, null);
    } catch (e) {
      masterError.textContent = e instanceof ApiError && e.status === 401
        ? 'This master key was not accepted.' : e.message;
    } finally {
      masterSubmit.disabled = false;
    }
  });

  document.getElementById('main').replaceChildren(
    h('section', { class: 'login' },
      h('div', { class: 'brand' }, h('img', { src: 'favicon.svg', alt: '', width: 28, height: 28 }), 'llm-proxy'),
      h('div', { class: 'card' },
        h('h1', null, 'Sign in'),
        signInReason ? h('p', { class: 'notice-text', role: 'status' }, signInReason) : null,
        form,
        h('details', null,
          h('summary', null, 'Use the master key instead'),
          masterForm))));
  username.focus();
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

async function renderConnections(view) {
  const list = h('div', { class: 'card' }, h('p', { class: 'loading' }, 'Loading…'));
  view.append(pageHead('Connections',
    'Provider endpoints and their credentials. Secrets are stored encrypted and shown masked.',
    isAdmin() ? h('button', { type: 'button', onclick: () => addConnection().then(reload).catch(report) }, 'Add connection') : null),
  list);

  async function reload(changed) {
    if (changed === undefined) return;
    await load();
  }
  async function load() {
    const [conns, models] = await Promise.all([api('GET', '/connections'), api('GET', '/models')]);
    const count = (id) => models.filter((m) => m.conn_id === id).length;
    const columns = [{ label: 'Name' }, { label: 'Provider' }, { label: 'Endpoint' },
      { label: 'API key' }, { label: 'Timeout', num: true }, { label: 'Models', num: true }];
    if (isAdmin()) columns.push({ label: 'Actions' });
    list.replaceChildren(table('Connections', columns, conns.map((c) => h('tr', null,
      h('td', null, h('strong', null, c.name)),
      h('td', null, c.provider),
      h('td', { class: 'mono' }, c.endpoint || '—'),
      h('td', { class: 'mono' }, c.api_key ?? c.access_key_id ?? '—'),
      h('td', { class: 'num' }, `${fmtNum(c.timeout, 1)} s`),
      h('td', { class: 'num' }, fmtInt(count(c.id))),
      isAdmin() ? h('td', { class: 'actions' },
        h('button', {
          type: 'button', class: 'danger small', 'aria-label': `Delete connection ${c.name}`,
          onclick: () => removeWithForce('connection', `/connections/${c.id}`, c.name).then(reload).catch(report),
        }, 'Delete')) : null)),
    'No connections yet.' + (isAdmin() ? ' Add one to reach a provider.' : '')));
  }
  await load();
}

function addConnection() {
  const name = h('input', { name: 'name', required: true, autocomplete: 'off', pattern: '.*\\D.*', title: 'A name, not only digits' });
  const provider = select('provider', PROVIDERS, 'openai');
  const endpoint = h('input', { name: 'endpoint', type: 'url', placeholder: 'https://…', autocomplete: 'off' });
  const apiKey = h('input', { name: 'api_key', type: 'password', autocomplete: 'off' });
  const apiVersion = h('input', { name: 'api_version', autocomplete: 'off', placeholder: '2024-10-21' });
  const region = h('input', { name: 'region', autocomplete: 'off', placeholder: 'us-east-1' });
  const accessKey = h('input', { name: 'access_key_id', autocomplete: 'off' });
  const secretKey = h('input', { name: 'secret_access_key', type: 'password', autocomplete: 'off' });
  const timeout = h('input', { name: 'timeout', type: 'number', min: '0.1', step: 'any', placeholder: '600' });
  const template = h('textarea', { name: 'template', placeholder: '{ … }' });
  const only = {
    azure: [field('API version', apiVersion)],
    bedrock: [field('Region', region), field('Access key ID', accessKey), field('Secret access key', secretKey)],
    template: [h('div', { class: 'wide' }, field('Template (JSON)', template))],
  };
  const extra = h('div', { class: 'fields wide' });
  const update = () => extra.replaceChildren(...(only[provider.value] ?? []));
  provider.addEventListener('change', update);
  update();
  return dialog({
    title: 'Add connection',
    submitLabel: 'Add connection',
    body: h('div', { class: 'fields' },
      field('Name', name), field('Provider', provider),
      h('div', { class: 'wide' }, field('Endpoint', endpoint, 'Empty for the provider\'s public API (and for mock).')),
      field('API key', apiKey), field('Timeout (s)', timeout), extra),
    onSubmit: async () => {
      const body = { name: name.value.trim(), provider: provider.value };
      const put = (k, el) => { if (el.isConnected && el.value.trim()) body[k] = el.value.trim(); };
      put('endpoint', endpoint);
      put('api_key', apiKey);
      put('api_version', apiVersion);
      put('region', region);
      put('access_key_id', accessKey);
      put('secret_access_key', secretKey);
      put('template', template);
      if (timeout.value) body.timeout = Number(timeout.value);
      const c = await api('POST', '/connections', body);
      notify(`Connection ${c.name} added.`);
      return c;
    },
  });
}

// Deletes after a confirmation; when the thing is still in use (409), offers
// to remove it together with what uses it (?force=true).
async function removeWithForce(kind, path, name) {
  const ok = await confirmAction(`Delete ${kind} ${name}?`, `The ${kind} ${name} will be removed.`, `Delete ${kind}`);
  if (!ok) return undefined;
  try {
    await api('DELETE', path);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 409)) {
      report(e);
      return undefined;
    }
    const force = await confirmAction(`${name} is in use`, `${e.message} Delete it together with what uses it?`,
      'Delete everything');
    if (!force) return undefined;
    try {
      await api('DELETE', `${path}?force=true`);
    } catch (e2) {
      report(e2);
      return undefined;
    }
  }
  notify(`Deleted ${kind} ${name}.`);
  return true;
}

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

async function renderModels(view) {
  const list = h('div', { class: 'card' }, h('p', { class: 'loading' }, 'Loading…'));
  let conns = [];
  view.append(pageHead('Models',
    'Friendly aliases for a connection\'s models, with prices per million tokens for cost tracking.',
    isAdmin() ? h('button', { type: 'button', onclick: () => addModel(conns).then((m) => m && load()).catch(report) }, 'Add model') : null),
  list);

  async function load() {
    const [models, cs] = await Promise.all([api('GET', '/models'), api('GET', '/connections')]);
    conns = cs;
    const connName = (id) => conns.find((c) => c.id === id)?.name ?? `#${id}`;
    const columns = [{ label: 'Alias' }, { label: 'Remote model' }, { label: 'Connection' },
      { label: 'Input $/M', num: true }, { label: 'Output $/M', num: true }];
    if (isAdmin()) columns.push({ label: 'Actions' });
    list.replaceChildren(table('Models', columns, models.map((m) => h('tr', null,
      h('td', null, h('strong', null, m.name)),
      h('td', { class: 'mono' }, m.remote),
      h('td', null, connName(m.conn_id)),
      h('td', { class: 'num' }, m.input_price === null ? '—' : fmtNum(m.input_price, 4)),
      h('td', { class: 'num' }, m.output_price === null ? '—' : fmtNum(m.output_price, 4)),
      isAdmin() ? h('td', { class: 'actions' },
        h('button', {
          type: 'button', class: 'danger small', 'aria-label': `Delete model ${m.name}`,
          onclick: () => removeWithForce('model', `/models/${m.id}`, m.name).then((ok) => ok && load()).catch(report),
        }, 'Delete')) : null)),
    'No models yet.'));
  }
  await load();
}

function addModel(conns) {
  if (!conns.length) {
    notify('Add a connection first: a model is an alias on a connection.', 'error');
    return Promise.resolve(undefined);
  }
  const name = h('input', { name: 'name', required: true, autocomplete: 'off', pattern: '.*\\D.*', title: 'A name, not only digits' });
  const remote = h('input', { name: 'remote', required: true, autocomplete: 'off', placeholder: 'gpt-4o-mini' });
  const conn = select('conn_id', conns.map((c) => ({ value: String(c.id), label: `${c.name} (${c.provider})` })));
  const input = h('input', { name: 'input_price', type: 'number', min: '0', step: 'any' });
  const output = h('input', { name: 'output_price', type: 'number', min: '0', step: 'any' });
  return dialog({
    title: 'Add model',
    submitLabel: 'Add model',
    body: h('div', { class: 'fields' },
      field('Alias', name), field('Remote model', remote), field('Connection', conn),
      field('Input price', input, 'USD per million tokens'), field('Output price', output, 'USD per million tokens')),
    onSubmit: async () => {
      const body = { name: name.value.trim(), remote: remote.value.trim(), conn_id: Number(conn.value) };
      if (input.value) body.input_price = Number(input.value);
      if (output.value) body.output_price = Number(output.value);
      const m = await api('POST', '/models', body);
      notify(`Model ${m.name} added.`);
      return m;
    },
  });
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

// A limit set (an assignment's own, a plan's) in a few words; an assignment's
// plan comes first, its own limits (which override the plan's) after it.
function limitsText(a, none = 'no limits') {
  const parts = [];
  if (a.plan) parts.push(`plan ${a.plan}`);
  if (a.tps) parts.push(`${fmtNum(a.tps)} tps`);
  if (a.rpm) parts.push(`${fmtInt(a.rpm)} rpm`);
  if (a.rph) parts.push(`${fmtInt(a.rph)} req/hour`);
  if (a.rpd) parts.push(`${fmtInt(a.rpd)} req/day`);
  if (a.token_limit) parts.push(`${fmtCompact(a.token_limit)} tokens/${a.token_window}`);
  if (a.budget) parts.push(`${fmtCost(a.budget)}/${a.budget_window}`);
  if (a.max_parallel) parts.push(`${fmtInt(a.max_parallel)} parallel`);
  if (a.reserve_tokens) parts.push(`reserve ${fmtCompact(a.reserve_tokens)} tokens`);
  return parts.length ? parts.join(' · ') : none;
}

// A key's own limits, across all its assignments.
function keyLimitsText(k) {
  const parts = [];
  if (k.key_budget) parts.push(`${fmtCost(k.key_budget)}/${k.key_budget_window}`);
  if (k.key_token_limit) parts.push(`${fmtCompact(k.key_token_limit)} tokens/${k.key_token_window}`);
  return parts.join(' · ');
}

// Number inputs and windows, prefilled from `a`. Each value(forUpdate) leaves
// out what is empty, or sends 0 on update (which removes that limit).
function numberInputs(a, names) {
  const inputs = {};
  for (const [name, step] of names) {
    inputs[name] = h('input', { name, type: 'number', min: '0', step, value: a[name] ?? '' });
  }
  return inputs;
}

function readNumbers(inputs, forUpdate, out = {}) {
  for (const [name, input] of Object.entries(inputs)) {
    const integer = input.step === '1';
    if (input.value !== '') out[name] = integer ? parseInt(input.value, 10) : Number(input.value);
    else if (forUpdate) out[name] = 0;
  }
  return out;
}

const LIMIT_INPUTS = [['tps', 'any'], ['rpm', '1'], ['rph', '1'], ['rpd', '1'], ['token_limit', '1'],
  ['budget', 'any'], ['max_parallel', '1'], ['reserve_tokens', '1']];

// Inputs for every limit of an assignment or a plan, prefilled from `a`; with
// `plans`, a plan selector too (assignments).
function limitFields(a = {}, plans = null) {
  const n = numberInputs(a, LIMIT_INPUTS);
  const tokenWin = select('token_window', WINDOWS, a.token_window ?? 'day');
  const budgetWin = select('budget_window', WINDOWS, a.budget_window ?? 'month');
  const plan = plans ? select('plan', [{ value: '', label: 'No plan' },
    ...plans.map((p) => ({ value: p.name, label: p.name }))], a.plan ?? '') : null;
  return {
    el: [
      plan ? field('Plan', plan, 'Its limits apply where this grant sets none of its own.') : null,
      field('Requests per second (TPS)', n.tps), field('Requests per minute (RPM)', n.rpm),
      field('Requests per hour', n.rph), field('Requests per day', n.rpd),
      field('Token limit', n.token_limit), field('Token window', tokenWin),
      field('Budget (USD)', n.budget), field('Budget window', budgetWin),
      field('Max parallel requests', n.max_parallel),
      field('Reserved completion tokens', n.reserve_tokens, 'When the client sets no max_tokens.'),
    ].filter(Boolean),
    // Empty means no limit (of its own): 0 removes one on update.
    values(forUpdate) {
      const out = readNumbers(n, forUpdate);
      if (forUpdate || out.token_limit) out.token_window = tokenWin.value;
      if (forUpdate || out.budget) out.budget_window = budgetWin.value;
      if (plan && (plan.value || forUpdate)) out.plan = plan.value || 'none';
      return out;
    },
  };
}

// Inputs for a key's own limits (across all its assignments).
function keyLimitFields(k = {}) {
  const n = numberInputs(k, [['key_budget', 'any'], ['key_token_limit', '1']]);
  const budgetWin = select('key_budget_window', WINDOWS, k.key_budget_window ?? 'month');
  const tokenWin = select('key_token_window', WINDOWS, k.key_token_window ?? 'day');
  return {
    el: [field('Key budget (USD)', n.key_budget, 'Across all the key\'s grants.'),
      field('Key budget window', budgetWin),
      field('Key token limit', n.key_token_limit, 'Across all the key\'s grants.'),
      field('Key token window', tokenWin)],
    values(forUpdate) {
      const out = readNumbers(n, forUpdate);
      if (forUpdate || out.key_budget) out.key_budget_window = budgetWin.value;
      if (forUpdate || out.key_token_limit) out.key_token_window = tokenWin.value;
      return out;
    },
  };
}

function targetOptions(models, conns) {
  const out = [];
  if (models.length) {
    out.push({ group: 'Models', options: models.map((m) => ({ value: `model:${m.id}`, label: m.name })) });
  }
  if (conns.length) {
    out.push({ group: 'Connections (every model)', options: conns.map((c) => ({ value: `conn:${c.id}`, label: c.name })) });
  }
  return out;
}

function targetBody(value) {
  const [kind, id] = value.split(':');
  return kind === 'model' ? { model_id: Number(id) } : { conn_id: Number(id) };
}

async function renderKeys(view) {
  const fresh = h('div');
  const list = h('div', { class: 'card' }, h('p', { class: 'loading' }, 'Loading…'));
  const spend = h('section', { class: 'card', 'aria-label': 'Budgets' });
  let models = [];
  let conns = [];
  let plans = [];
  view.append(pageHead('Keys',
    'Virtual keys hand out access to models or whole connections, each grant with its own limits or a plan\'s.',
    isAdmin() ? h('button', { type: 'button', onclick: () => create().catch(report) }, 'Create key') : null),
  fresh, list, spend);

  const modelName = (id) => models.find((m) => m.id === id)?.name ?? `#${id}`;
  const connName = (id) => conns.find((c) => c.id === id)?.name ?? `#${id}`;
  const targetName = (a) => (a.model_id !== null && a.model_id !== undefined
    ? `model ${modelName(a.model_id)}` : `connection ${connName(a.conn_id)}`);

  async function act(fn) {
    try {
      const r = await fn();
      if (r !== undefined) await load();
    } catch (e) {
      report(e);
    }
  }

  async function create() {
    if (!models.length && !conns.length) {
      notify('Add a connection or a model first: a key needs something to grant.', 'error');
      return;
    }
    const name = h('input', { name: 'name', required: true, autocomplete: 'off', pattern: '.*\\D.*', title: 'A name, not only digits' });
    const target = select('target', targetOptions(models, conns));
    const expires = h('input', { name: 'expires', type: 'date' });
    const limits = limitFields({}, plans);
    const keyLimits = keyLimitFields();
    const created = await dialog({
      title: 'Create key',
      submitLabel: 'Create key',
      body: h('div', { class: 'fields' },
        field('Name', name), field('Access to', target), ...limits.el,
        field('Expires', expires, 'Optional; valid through that day (UTC).'),
        h('h3', { class: 'wide' }, 'Limits of the whole key'), ...keyLimits.el),
      onSubmit: async () => {
        const body = { name: name.value.trim(), ...targetBody(target.value), ...limits.values(false),
          ...keyLimits.values(false) };
        if (expires.value) body.expires = expires.value;
        return api('POST', '/vkeys', body);
      },
    });
    if (!created) return;
    await load();
    await showSecret('Key created', created.key, created.name);
  }

  async function load() {
    [models, conns, plans] = await Promise.all([api('GET', '/models'), api('GET', '/connections'),
      api('GET', '/plans')]);
    const [keys, budgets] = await Promise.all([api('GET', '/vkeys'), api('GET', '/budgets')]);
    spend.replaceChildren(h('h2', null, 'Budgets'), budgetTable(budgets, targetName));
    const columns = [{ label: 'Name' }, { label: 'Key' }, { label: 'Status' }, { label: 'Expires' },
      { label: 'Access and limits' }];
    if (isAdmin()) columns.push({ label: 'Actions' });
    list.replaceChildren(table('Virtual keys', columns, keys.map((k) => {
      const expired = k.expires && Date.parse(k.expires) <= Date.now();
      const status = !k.enabled ? h('span', { class: 'badge off' }, 'Disabled')
        : expired ? h('span', { class: 'badge warn' }, 'Expired') : h('span', { class: 'badge ok' }, 'Enabled');
      const grants = h('ul', { class: 'grants' }, k.assignments.map((a) => h('li', null,
        h('span', { class: 'grant-target' }, targetName(a)),
        h('span', { class: 'grant-limits' }, limitsText(a)),
        isAdmin() ? [
          h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `Edit limits of ${k.name} on ${targetName(a)}`,
            onclick: () => act(() => editLimits(k, a, targetName(a))),
          }, 'Edit limits'),
          h('button', {
            type: 'button', class: 'danger small', 'aria-label': `Remove access of ${k.name} to ${targetName(a)}`,
            onclick: () => act(async () => {
              const ok = await confirmAction(`Remove access to ${targetName(a)}?`,
                `The key ${k.name} will no longer reach ${targetName(a)}.`, 'Remove access');
              if (!ok) return undefined;
              await api('DELETE', `/assignments/${a.id}`);
              notify(`Removed access of ${k.name} to ${targetName(a)}.`);
              return true;
            }),
          }, 'Remove')] : null)));
      if (!k.assignments.length) grants.append(h('li', { class: 'muted' }, 'no access'));
      const keyLimits = keyLimitsText(k);
      return h('tr', null,
        h('td', null, h('strong', null, k.name),
          keyLimits ? h('div', { class: 'grant-limits' }, `whole key: ${keyLimits}`) : null),
        h('td', { class: 'mono nowrap' }, k.key_hint || '—'),
        h('td', null, status),
        h('td', null, k.expires ? fmtTime(k.expires) : 'never'),
        h('td', null, grants),
        isAdmin() ? h('td', { class: 'actions' },
          h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `${k.enabled ? 'Disable' : 'Enable'} key ${k.name}`,
            onclick: () => act(async () => {
              await api('POST', `/vkeys/${k.id}/${k.enabled ? 'disable' : 'enable'}`);
              notify(`Key ${k.name} ${k.enabled ? 'disabled' : 'enabled'}.`);
              return true;
            }),
          }, k.enabled ? 'Disable' : 'Enable'),
          h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `Add access to key ${k.name}`,
            onclick: () => act(() => addGrant(k)),
          }, 'Add access'),
          h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `Edit key-wide limits of ${k.name}`,
            onclick: () => act(() => editKeyLimits(k)),
          }, 'Key limits'),
          h('button', {
            type: 'button', class: 'secondary small', 'aria-label': `Rotate key ${k.name}`,
            onclick: () => act(async () => {
              const ok = await confirmAction(`Rotate ${k.name}?`,
                'A new key is made and the current one stops working at once.', 'Rotate key');
              if (!ok) return undefined;
              const r = await api('POST', `/vkeys/${k.id}/rotate`);
              await load();
              await showSecret('Key rotated', r.key, r.name);
              return undefined;
            }),
          }, 'Rotate'),
          h('button', {
            type: 'button', class: 'danger small', 'aria-label': `Delete key ${k.name}`,
            onclick: () => act(async () => {
              const ok = await confirmAction(`Delete ${k.name}?`,
                'The key and its grants are removed; its usage history stays.', 'Delete key');
              if (!ok) return undefined;
              await api('DELETE', `/vkeys/${k.id}`);
              notify(`Key ${k.name} deleted.`);
              return true;
            }),
          }, 'Delete')) : null);
    }), 'No keys yet.'));
  }

  async function editLimits(k, a, target) {
    const limits = limitFields(a, plans);
    return dialog({
      title: `Limits of ${k.name} on ${target}`,
      submitLabel: 'Save limits',
      body: [h('p', { class: 'muted' }, 'Leave a field empty for no limit of its own (the plan\'s, if any, applies).'),
        h('div', { class: 'fields' }, ...limits.el)],
      onSubmit: async () => {
        await api('PATCH', `/assignments/${a.id}`, limits.values(true));
        notify(`Limits of ${k.name} on ${target} saved.`);
        return true;
      },
    });
  }

  async function editKeyLimits(k) {
    const limits = keyLimitFields(k);
    return dialog({
      title: `Key-wide limits of ${k.name}`,
      submitLabel: 'Save key limits',
      body: [h('p', { class: 'muted' }, 'Across all the key\'s grants. Leave a field empty for no limit.'),
        h('div', { class: 'fields' }, ...limits.el)],
      onSubmit: async () => {
        await api('PATCH', `/vkeys/${k.id}`, limits.values(true));
        notify(`Key-wide limits of ${k.name} saved.`);
        return true;
      },
    });
  }

  async function addGrant(k) {
    const target = select('target', targetOptions(models, conns));
    const limits = limitFields({}, plans);
    return dialog({
      title: `Add access to ${k.name}`,
      submitLabel: 'Add access',
      body: h('div', { class: 'fields' }, field('Access to', target), ...limits.el),
      onSubmit: async () => {
        const body = { vkey_id: k.id, ...targetBody(target.value), ...limits.values(false) };
        await api('POST', '/assignments', body);
        notify(`Access added to ${k.name}.`);
        return true;
      },
    });
  }

  await load();
}

// Spend against every budget (GET /admin/api/budgets): in the current window
// of each, from the usage records.
function budgetTable(budgets, targetName) {
  const columns = [{ label: 'Key' }, { label: 'Applies to' }, { label: 'Window' },
    { label: 'Budget', num: true }, { label: 'Spent', num: true }, { label: 'Remaining', num: true },
    { label: 'Used' }];
  return table('Budgets', columns, budgets.map((b) => h('tr', null,
    h('th', { scope: 'row' }, b.vkey_name),
    h('td', null, b.scope === 'key' ? 'the whole key' : targetName(b),
      b.plan ? h('span', { class: 'muted' }, ` (plan ${b.plan})`) : null),
    h('td', null, b.window_start ? `${b.budget_window} since ${fmtTime(b.window_start)}` : b.budget_window),
    h('td', { class: 'num' }, fmtCost(b.budget)),
    h('td', { class: 'num' }, fmtCost(b.spent)),
    h('td', { class: 'num' }, fmtCost(b.remaining)),
    h('td', null, h('meter', {
      min: 0, max: b.budget, value: Math.min(b.spent, b.budget), low: b.budget * 0.75, high: b.budget * 0.9,
      optimum: 0, 'aria-label': `${b.vkey_name}: ${fmtPercent(b.spent, b.budget)} of the budget used`,
    }), ` ${fmtPercent(b.spent, b.budget)}`))),
  'No budgets: set one on a grant, a plan or a whole key.');
}

// ---------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------

async function renderPlans(view) {
  const list = h('div', { class: 'card' }, h('p', { class: 'loading' }, 'Loading…'));
  view.append(pageHead('Plans',
    'Named limit sets (tiers) for grants. A grant on a plan uses the plan\'s limits where it sets none of its own; a change to a plan reaches every key on it.',
    isAdmin() ? h('button', { type: 'button', onclick: () => editPlan().then((p) => p && load()).catch(report) }, 'Create plan') : null),
  list);

  async function load() {
    const plans = await api('GET', '/plans');
    const columns = [{ label: 'Name' }, { label: 'Limits' }, { label: 'Grants', num: true }];
    if (isAdmin()) columns.push({ label: 'Actions' });
    list.replaceChildren(table('Plans', columns, plans.map((p) => h('tr', null,
      h('td', null, h('strong', null, p.name)),
      h('td', null, limitsText(p, 'unlimited')),
      h('td', { class: 'num' }, fmtInt(p.assignments)),
      isAdmin() ? h('td', { class: 'actions' },
        h('button', {
          type: 'button', class: 'secondary small', 'aria-label': `Edit plan ${p.name}`,
          onclick: () => editPlan(p).then((r) => r && load()).catch(report),
        }, 'Edit'),
        h('button', {
          type: 'button', class: 'danger small', 'aria-label': `Delete plan ${p.name}`,
          onclick: () => removePlan(p).then((r) => r && load()).catch(report),
        }, 'Delete')) : null)),
    'No plans yet.' + (isAdmin() ? ' Create one to give many keys the same limits.' : '')));
  }
  await load();
}

// Creates a plan, or edits `p`.
function editPlan(p) {
  const name = h('input', { name: 'name', required: true, autocomplete: 'off', pattern: '.*\\D.*', title: 'A name, not only digits', value: p?.name ?? '' });
  const limits = limitFields(p ?? {});
  return dialog({
    title: p ? `Edit plan ${p.name}` : 'Create plan',
    submitLabel: p ? 'Save plan' : 'Create plan',
    body: [h('p', { class: 'muted' }, 'Leave a field empty for no limit.'),
      h('div', { class: 'fields' }, field('Name', name), ...limits.el)],
    onSubmit: async () => {
      const body = { name: name.value.trim(), ...limits.values(Boolean(p)) };
      const saved = p ? await api('PATCH', `/plans/${p.id}`, body) : await api('POST', '/plans', body);
      notify(`Plan ${saved.name} ${p ? 'saved' : 'created'}.`);
      return saved;
    },
  });
}

// Deletes after a confirmation; a plan still in use (409) is detached from its
// grants first (?force=true) if the user agrees.
async function removePlan(p) {
  const ok = await confirmAction(`Delete plan ${p.name}?`, `The plan ${p.name} will be removed.`, 'Delete plan');
  if (!ok) return undefined;
  try {
    await api('DELETE', `/plans/${p.id}`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 409)) throw e;
    const force = await confirmAction(`${p.name} is in use`,
      `${e.message} Its grants keep only their own limits.`, 'Detach and delete');
    if (!force) return undefined;
    await api('DELETE', `/plans/${p.id}?force=true`);
  }
  notify(`Deleted plan ${p.name}.`);
  return true;
}

// ---------------------------------------------------------------------------
// Charts (inline SVG)
// ---------------------------------------------------------------------------

// A "nice" axis maximum and step for values up to `max`.
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  return { top: step * Math.ceil(max / step), step };
}

// labels: x labels; series: [{ name, values, cls }]; kind: 'bar' (stacked) or 'line'.
function chart({ title, labels, series, kind = 'bar', format = fmtCompact, summary }) {
  const W = 640;
  const H = 240;
  const n = labels.length;
  const totals = labels.map((_, i) => (kind === 'bar'
    ? series.reduce((a, sr) => a + (sr.values[i] ?? 0), 0)
    : Math.max(0, ...series.map((sr) => sr.values[i] ?? 0))));
  const { top, step } = niceScale(Math.max(0, ...totals));
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  // Room on the left for the longest axis label (about 6.5 px a character).
  const widest = Math.max(...ticks.map((v) => format(v).length));
  const pad = { l: Math.max(36, 12 + widest * 6.5), r: 12, t: 12, b: 30 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const y = (v) => pad.t + ih - (ih * v) / top;
  const slot = iw / Math.max(n, 1);
  const x = (i) => pad.l + slot * i + slot / 2;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary ?? title });
  for (const v of ticks) {
    svg.append(s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis-label', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  const every = Math.max(1, Math.ceil(n / 10));
  labels.forEach((label, i) => {
    if (i % every === 0 || i === n - 1) {
      svg.append(s('text', { class: 'axis-label', x: x(i), y: H - 10, 'text-anchor': 'middle' }, label.slice(5)));
    }
  });
  if (kind === 'bar') {
    const bw = Math.max(2, Math.min(36, slot * 0.7));
    labels.forEach((label, i) => {
      let base = 0;
      for (const sr of series) {
        const v = sr.values[i] ?? 0;
        if (v > 0) {
          svg.append(s('rect', {
            class: `bar ${sr.cls}`, x: x(i) - bw / 2, y: y(base + v), width: bw,
            height: Math.max(0.5, y(base) - y(base + v)), rx: 2,
          }, s('title', null, `${label} · ${sr.name}: ${format(v)}`)));
        }
        base += v;
      }
    });
  } else {
    for (const sr of series) {
      const pts = sr.values.map((v, i) => (v === null || v === undefined ? null : [x(i), y(v)]));
      let d = '';
      pts.forEach((p, i) => {
        if (!p) return;
        d += `${d && pts[i - 1] ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
      });
      if (d) svg.append(s('path', { class: `line ${sr.cls}`, d }));
      pts.forEach((p, i) => {
        if (p) {
          svg.append(s('circle', { class: `dot ${sr.cls}`, cx: p[0], cy: p[1], r: 3 },
            s('title', null, `${labels[i]} · ${sr.name}: ${format(sr.values[i])}`)));
        }
      });
    }
  }
  return h('figure', { class: 'chart card' },
    h('figcaption', null, title),
    svg,
    series.length > 1 || kind === 'line'
      ? h('div', { class: 'legend' }, series.map((sr) => h('span', null, h('span', { class: `swatch ${sr.cls}` }), sr.name)))
      : null);
}

// ---------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------

const PERIODS = [
  { value: '24h', label: 'Last 24 hours', days: 1 },
  { value: '7d', label: 'Last 7 days', days: 7 },
  { value: '30d', label: 'Last 30 days', days: 30 },
  { value: '90d', label: 'Last 90 days', days: 90 },
];

const hasPercentiles = (rows) => rows.some((r) => typeof r.p50_latency_ms === 'number');

// Every UTC day of the period, oldest first, as YYYY-MM-DD.
function daysOf(period) {
  const days = PERIODS.find((p) => p.value === period)?.days ?? 7;
  const out = [];
  const now = Date.now();
  for (let i = days; i >= 0; i -= 1) out.push(new Date(now - i * 86400000).toISOString().slice(0, 10));
  if (days === 1) return out.slice(-2);
  return out.slice(1);
}

let usagePeriod = '7d';

async function renderUsage(view) {
  const period = select('period', PERIODS.map((p) => ({ value: p.value, label: p.label })), usagePeriod);
  const body = h('div', null, h('p', { class: 'loading' }, 'Loading…'));
  period.addEventListener('change', () => {
    usagePeriod = period.value;
    load().catch(report);
  });
  view.append(pageHead('Usage', 'Requests, tokens, cost, errors and latency, from the usage records.',
    field('Period', period)), body);

  async function load() {
    const since = encodeURIComponent(usagePeriod);
    const [byDay, byKey, byModel] = await Promise.all([
      api('GET', `/usage?by=day&since=${since}`),
      api('GET', `/usage?by=key&since=${since}`),
      api('GET', `/usage?by=model&since=${since}`),
    ]);
    const labels = daysOf(usagePeriod);
    for (const r of byDay) if (!labels.includes(r.group)) labels.push(r.group);
    labels.sort();
    const day = new Map(byDay.map((r) => [r.group, r]));
    const col = (f) => labels.map((l) => (day.has(l) ? f(day.get(l)) : 0));
    const colOrNull = (f) => labels.map((l) => (day.has(l) ? f(day.get(l)) : null));

    const total = byDay.reduce((a, r) => ({
      requests: a.requests + r.requests,
      errors: a.errors + r.errors,
      prompt: a.prompt + r.prompt_tokens,
      completion: a.completion + r.completion_tokens,
      cost: a.cost + r.cost,
      latency: a.latency + r.avg_latency_ms * r.requests,
    }), { requests: 0, errors: 0, prompt: 0, completion: 0, cost: 0, latency: 0 });
    const pct = hasPercentiles(byDay);
    const worst = (k) => Math.max(0, ...byDay.map((r) => r[k] ?? 0));

    const stat = (label, value, sub) => h('div', { class: 'stat', role: 'group', 'aria-label': label },
      h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), sub ? h('div', { class: 'sub' }, sub) : null);
    const stats = h('div', { class: 'stats' },
      stat('Requests', fmtInt(total.requests)),
      stat('Tokens', fmtCompact(total.prompt + total.completion),
        `${fmtCompact(total.prompt)} prompt · ${fmtCompact(total.completion)} completion`),
      total.cost > 0 && total.cost < 0.01
        ? stat('Cost', '< $0.01', fmtCost(total.cost)) : stat('Cost', fmtCost(total.cost)),
      stat('Error rate', fmtPercent(total.errors, total.requests), `${fmtInt(total.errors)} errors`),
      stat('Avg latency', fmtMs(total.requests ? total.latency / total.requests : null)),
      pct ? stat('p95 latency', fmtMs(worst('p95_latency_ms')), 'worst day') : null,
      pct ? stat('p99 latency', fmtMs(worst('p99_latency_ms')), 'worst day') : null);

    const latencySeries = [{ name: 'average', values: colOrNull((r) => r.avg_latency_ms), cls: 's1' }];
    if (pct) {
      latencySeries.push(
        { name: 'p50', values: colOrNull((r) => r.p50_latency_ms), cls: 's5' },
        { name: 'p95', values: colOrNull((r) => r.p95_latency_ms), cls: 's4' },
        { name: 'p99', values: colOrNull((r) => r.p99_latency_ms), cls: 's3' });
    }
    const charts = h('div', { class: 'charts' },
      chart({
        title: 'Requests per day', labels,
        summary: `Requests per day: ${fmtInt(total.requests)} in total, ${fmtInt(total.errors)} errors`,
        series: [{ name: 'succeeded', values: col((r) => r.requests - r.errors), cls: 's1' },
          { name: 'errors', values: col((r) => r.errors), cls: 's3' }],
        format: fmtCompact,
      }),
      chart({
        title: 'Tokens per day', labels,
        summary: `Tokens per day: ${fmtInt(total.prompt + total.completion)} in total`,
        series: [{ name: 'prompt', values: col((r) => r.prompt_tokens), cls: 's1' },
          { name: 'completion', values: col((r) => r.completion_tokens), cls: 's2' }],
      }),
      chart({
        title: 'Cost per day', labels,
        summary: `Cost per day: ${fmtCost(total.cost)} in total`,
        series: [{ name: 'cost', values: col((r) => r.cost), cls: 's5' }],
        format: fmtCost,
      }),
      chart({
        title: 'Latency per day', labels, kind: 'line',
        summary: `Latency per day${pct ? ': average, p50, p95 and p99' : ': average'}`,
        series: latencySeries,
        format: fmtMs,
      }));

    body.replaceChildren(stats, charts,
      groupTable('Top keys', 'Key', byKey),
      groupTable('Top models', 'Model', byModel),
      h('div', { class: 'card' },
        h('h2', null, 'By day'),
        groupTable(null, 'Day', [...byDay].reverse(), false)));
  }
  await load();
}

function groupTable(title, what, rows, top = true) {
  const pct = hasPercentiles(rows);
  const sorted = top ? [...rows].sort((a, b) => b.requests - a.requests || b.cost - a.cost).slice(0, 10) : rows;
  const columns = [{ label: what }, { label: 'Requests', num: true }, { label: 'Errors', num: true },
    { label: 'Tokens', num: true }, { label: 'Cost', num: true }, { label: 'Avg', num: true }];
  if (pct) columns.push({ label: 'p50', num: true }, { label: 'p95', num: true }, { label: 'p99', num: true });
  const t = table(title ?? `Usage by ${what.toLowerCase()}`, columns, sorted.map((r) => h('tr', null,
    h('th', { scope: 'row' }, r.group || '—'),
    h('td', { class: 'num' }, fmtInt(r.requests)),
    h('td', { class: 'num' }, fmtPercent(r.errors, r.requests)),
    h('td', { class: 'num' }, fmtInt(r.total_tokens ?? r.prompt_tokens + r.completion_tokens)),
    h('td', { class: 'num' }, fmtCost(r.cost)),
    h('td', { class: 'num' }, fmtMs(r.avg_latency_ms)),
    pct ? [h('td', { class: 'num' }, fmtMs(r.p50_latency_ms)), h('td', { class: 'num' }, fmtMs(r.p95_latency_ms)),
      h('td', { class: 'num' }, fmtMs(r.p99_latency_ms))] : null)),
  'No requests in this period.');
  if (!title) return t;
  return h('section', { class: 'card', 'aria-label': title }, h('h2', null, title), t);
}

// ---------------------------------------------------------------------------
// Slow requests
// ---------------------------------------------------------------------------

let slowSince = '24h';

async function renderSlow(view) {
  const since = select('since', [{ value: '1h', label: 'Last hour' }, { value: '24h', label: 'Last 24 hours' },
    { value: '7d', label: 'Last 7 days' }], slowSince);
  const list = h('div', { class: 'card' }, h('p', { class: 'loading' }, 'Loading…'));
  since.addEventListener('change', () => {
    slowSince = since.value;
    load().catch(report);
  });
  view.append(pageHead('Slow requests', 'The slowest recent requests, slowest first.',
    field('Period', since)), list);

  async function load() {
    const rows = await api('GET', `/slow?limit=25&since=${encodeURIComponent(slowSince)}`);
    list.replaceChildren(table('Slow requests', [
      { label: 'Time' }, { label: 'Latency', num: true }, { label: 'First token', num: true },
      { label: 'Status', num: true }, { label: 'Key' }, { label: 'Model' }, { label: 'Connection' },
      { label: 'Tokens', num: true }, { label: 'Cost', num: true }, { label: 'Request ID' }],
    rows.map((r) => h('tr', null,
      h('td', { class: 'nowrap' }, fmtTime(r.time)),
      h('td', { class: 'num' }, h('strong', null, fmtMs(r.latency_ms))),
      h('td', { class: 'num' }, fmtMs(r.ttft_ms)),
      h('td', { class: 'num' }, h('span', { class: `badge ${r.status >= 400 ? 'off' : 'ok'}` }, String(r.status))),
      h('td', null, r.vkey_name || '—'),
      h('td', null, r.model || '—'),
      h('td', null, r.conn_name || '—'),
      h('td', { class: 'num' }, fmtInt(r.total_tokens)),
      h('td', { class: 'num' }, fmtCost(r.cost)),
      h('td', { class: 'mono' }, r.request_id))),
    'No requests in this period.'));
  }
  await load();
}

// ---------------------------------------------------------------------------
// Playground
// ---------------------------------------------------------------------------

let playgroundAbort = null;

async function renderPlayground(view) {
  const pg = state.playground;
  const key = h('input', { name: 'vkey', type: 'password', autocomplete: 'off', spellcheck: 'false', value: pg.key, placeholder: 'sk-…' });
  const loadBtn = h('button', { type: 'button', class: 'secondary' }, 'Load models');
  const model = h('select', { name: 'model', disabled: true }, h('option', { value: '' }, 'Load the key\'s models first'));
  const prompt = h('textarea', { name: 'prompt', required: true, value: pg.prompt, placeholder: 'Say hello.' });
  const send = h('button', { type: 'submit', disabled: true }, 'Send');
  const stop = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Stop');
  const keyError = h('p', { class: 'error-text', role: 'alert' });
  const reply = h('div', { class: 'reply', role: 'log', 'aria-label': 'Reply', 'aria-live': 'polite' });
  const status = h('p', { class: 'reply-status', role: 'status' }, 'Idle.');
  const statsBody = h('tbody');
  const stats = h('table', { class: 'kv' }, h('caption', { class: 'visually-hidden' }, 'Reply statistics'), statsBody);

  const form = h('form', { 'aria-label': 'Chat request' },
    h('div', { class: 'key-row' }, field('Virtual key', key), loadBtn),
    keyError,
    field('Model', model),
    field('Prompt', prompt),
    h('div', { class: 'form-actions' }, stop, send));

  view.append(pageHead('Playground',
    'Try a virtual key: the models it may use, and a streamed chat reply with its usage and latency.'),
  h('div', { class: 'playground' },
    h('div', { class: 'card' }, form),
    h('section', { class: 'card', 'aria-label': 'Response' },
      h('h2', null, 'Reply'), status, reply, h('h2', null, 'Usage and latency'), stats)));

  function setStats(rows) {
    statsBody.replaceChildren(...rows.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v))));
  }
  setStats([['Time to first token', '—'], ['Total time', '—'], ['Prompt tokens', '—'],
    ['Completion tokens', '—'], ['Total tokens', '—']]);

  function fillModels() {
    model.replaceChildren(...pg.models.map((m) => h('option', { value: m.id, selected: m.id === pg.model }, `${m.id} (${m.owned_by})`)));
    model.disabled = !pg.models.length;
    send.disabled = !pg.models.length;
    if (!pg.models.length) model.append(h('option', { value: '' }, 'This key may use no model'));
  }

  async function loadModels() {
    keyError.textContent = '';
    pg.key = key.value.trim();
    pg.models = [];
    if (!pg.key) {
      keyError.textContent = 'Paste a virtual key first.';
      fillModels();
      return;
    }
    loadBtn.disabled = true;
    try {
      const r = await request('/v1/models', { token: pg.key });
      pg.models = r.data ?? [];
      if (!pg.models.some((m) => m.id === pg.model)) pg.model = pg.models[0]?.id ?? '';
    } catch (e) {
      keyError.textContent = e instanceof ApiError && e.status === 401 ? `The key was refused: ${e.message}` : e.message;
    } finally {
      loadBtn.disabled = false;
      fillModels();
    }
  }
  loadBtn.addEventListener('click', loadModels);
  key.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      loadModels();
    }
  });
  model.addEventListener('change', () => { pg.model = model.value; });
  prompt.addEventListener('input', () => { pg.prompt = prompt.value; });
  stop.addEventListener('click', () => playgroundAbort?.abort());
  if (pg.models.length) fillModels();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity() || !model.value) return;
    playgroundAbort?.abort();
    const abort = new AbortController();
    playgroundAbort = abort;
    reply.replaceChildren();
    reply.dataset.chunks = '0';
    reply.classList.add('streaming');
    send.disabled = true;
    stop.disabled = false;
    status.textContent = 'Waiting for the first token…';
    setStats([['Time to first token', '…'], ['Total time', '…'], ['Prompt tokens', '…'],
      ['Completion tokens', '…'], ['Total tokens', '…']]);
    const started = performance.now();
    let firstToken = null;
    let usage = null;
    let chunks = 0;
    let failure = null;
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        signal: abort.signal,
        headers: { Authorization: `Bearer ${pg.key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({
          model: model.value,
          messages: [{ role: 'user', content: prompt.value }],
          stream: true,
          stream_options: { include_usage: true },
        }),
      });
      if (!res.ok) {
        let message = `HTTP ${res.status}`;
        try {
          message = (await res.json())?.error?.message ?? message;
        } catch { /* not JSON */ }
        throw new ApiError(res.status, 'error', message);
      }
      const onEvent = (data) => {
        if (data === '[DONE]') return;
        let ev;
        try {
          ev = JSON.parse(data);
        } catch {
          return;
        }
        if (ev.error) throw new ApiError(0, 'stream', ev.error.message ?? 'the stream failed');
        if (ev.usage) usage = ev.usage;
        const delta = ev.choices?.[0]?.delta?.content;
        if (delta) {
          if (firstToken === null) {
            firstToken = performance.now() - started;
            status.textContent = 'Streaming…';
          }
          chunks += 1;
          reply.append(document.createTextNode(delta));
          reply.dataset.chunks = String(chunks);
        }
      };
      await readSse(res.body, onEvent);
    } catch (e) {
      failure = e;
    } finally {
      if (playgroundAbort === abort) playgroundAbort = null;
      reply.classList.remove('streaming');
      send.disabled = false;
      stop.disabled = true;
    }
    const total = performance.now() - started;
    if (failure?.name === 'AbortError') status.textContent = 'Stopped.';
    else if (failure) status.textContent = `Failed: ${failure.message}`;
    else status.textContent = `Done: ${chunks} chunk${chunks === 1 ? '' : 's'} received.`;
    setStats([
      ['Time to first token', fmtMs(firstToken)],
      ['Total time', fmtMs(total)],
      ['Prompt tokens', usage ? fmtInt(usage.prompt_tokens) : '—'],
      ['Completion tokens', usage ? fmtInt(usage.completion_tokens) : '—'],
      ['Total tokens', usage ? fmtInt(usage.total_tokens) : '—'],
    ]);
  });
}

// Reads a text/event-stream body, calling onData(data) for each event's data.
async function readSse(body, onData) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const flush = (block) => {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (data) onData(data);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let m;
    while ((m = /\r?\n\r?\n/.exec(buffer))) {
      flush(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
    }
  }
  if (buffer.trim()) flush(buffer);
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

document.getElementById('sign-out').addEventListener('click', () => signOut('You have signed out.'));
window.addEventListener('hashchange', () => route());
window.addEventListener('unhandledrejection', (ev) => {
  if (ev.reason?.handled) ev.preventDefault();
});
route();
