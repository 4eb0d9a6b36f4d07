// The web dashboard (/admin/ on `llm-proxy serve`) in a real Chromium, driven
// with playwright-core: sign-in, keys (create / shown once / disable / limits),
// plans (create / edit / delete in use), key-wide limits and budgets,
// models, connections, usage charts, slow requests, the playground streaming
// from the mock provider (and from a held upstream, to see tokens arrive while
// the stream is still open), a viewer's read-only view, and an expired
// session. A screenshot of every page goes to LLM_PROXY_ARTIFACTS.
//
// Needs LLM_PROXY_BIN (the built binary) and Debian's chromium
// (/usr/bin/chromium, or CHROMIUM_PATH). Run with: bash tests/dashboard/run.sh
// Waiting is done by Playwright's auto-waiting locators and by polling a
// condition (eventually()), never by sleeping.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.LLM_PROXY_BIN;
if (!BIN) throw new Error('set LLM_PROXY_BIN to the llm-proxy binary');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  throw new Error(`dashboard_browser: Chromium not found at ${CHROMIUM}; this test needs a real browser ` +
    '(install it with: bash packaging/install-deps.sh test, or apt-get install chromium; ' +
    'or point CHROMIUM_PATH at one)');
}
const ARTIFACTS = resolve(process.env.LLM_PROXY_ARTIFACTS || join(process.cwd(), 'artifacts'));
mkdirSync(ARTIFACTS, { recursive: true });

const dir = mkdtempSync(join(tmpdir(), 'llm-proxy-dashboard-'));
const db = `sqlite://${join(dir, 'dashboard.db')}`;
const MASTER = 'sk-master-dashboard-test-0123';
const ALICE = { username: 'alice', password: 'alice-password-123' };
const VERA = { username: 'vera', password: 'vera-password-4567' };

const childEnv = { ...process.env };
for (const name of ['LLM_PROXY_DB', 'DB_TYPE', 'DB_DSN', 'MASTER_KEY', 'LLM_PROXY_ADMIN_PASSWORD']) {
  delete childEnv[name];
}

function cli(args, input) {
  const r = spawnSync(BIN, ['--db', db, '--json', ...args], { env: childEnv, encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`llm-proxy ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : null;
}

// Polls `fn` until it returns without throwing (and, if it returns something,
// something truthy); rethrows the last failure after `timeout` ms.
async function eventually(fn, { timeout = 10000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    let failure;
    try {
      const v = await fn();
      if (v !== false && v !== null) return v;
      failure = new Error(`timed out waiting for ${message}`);
    } catch (e) {
      failure = e;
    }
    if (Date.now() >= deadline) throw failure;
    await new Promise((r) => setTimeout(r, interval));
  }
}

// ---------------------------------------------------------------------------
// An OpenAI-shaped upstream that streams "alpha", then waits until the test
// releases it, then streams the rest: proof that the page shows tokens while
// the stream is still open.
// ---------------------------------------------------------------------------
const held = { server: null, port: 0, release: null, released: null };
function armHold() {
  held.released = new Promise((r) => { held.release = r; });
}

async function handleUpstream(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  if (req.url !== '/v1/chat/completions' || !body.stream) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'streams only', type: 'invalid_request_error' } }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const chunk = (delta, finish = null) => `data: ${JSON.stringify({
    id: 'chatcmpl-held', object: 'chat.completion.chunk', created: 1, model: body.model,
    choices: [{ index: 0, delta, finish_reason: finish }],
  })}\n\n`;
  res.write(chunk({ role: 'assistant', content: 'alpha' }));
  await held.released;
  for (const w of [' beta', ' gamma', ' delta']) res.write(chunk({ content: w }));
  res.write(chunk({}, 'stop'));
  res.write(`data: ${JSON.stringify({
    id: 'chatcmpl-held', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
  })}\n\n`);
  res.end('data: [DONE]\n\n');
}

// ---------------------------------------------------------------------------
// serve, the browser, and per-page console checks
// ---------------------------------------------------------------------------
let serve;
let base;
let browser;
let playKey;

function startServe() {
  return new Promise((resolvePort, reject) => {
    const proc = spawn(BIN, ['--db', db, 'serve', '--listen', '127.0.0.1:0', '--threads', '2',
      '--master-key', MASTER], { env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolvePort({ proc, port: Number(m[1]), stderr: () => err });
    });
    proc.on('exit', (code) => reject(new Error(`llm-proxy serve exited ${code}: ${err}`)));
  });
}

before(async () => {
  held.server = http.createServer((req, res) => {
    handleUpstream(req, res).catch((e) => res.destroy(e));
  });
  await new Promise((r) => held.server.listen(0, '127.0.0.1', r));
  held.port = held.server.address().port;
  armHold();

  cli(['connection', 'add', '--name', 'demo', '--provider', 'mock']);
  cli(['model', 'add', '--name', 'echo', '--remote', 'echo', '--conn-id', 'demo',
    '--input-price', '1', '--output-price', '2']);
  cli(['connection', 'add', '--name', 'upstream', '--provider', 'openai-compatible',
    '--endpoint', `http://127.0.0.1:${held.port}/v1`, '--api-key', 'sk-upstream-secret-value']);
  cli(['model', 'add', '--name', 'held', '--remote', 'held-model', '--conn-id', 'upstream']);
  playKey = cli(['vkey', 'add', '--name', 'playground-key', '--model-id', 'echo', '--model-id', 'held']).key;
  cli(['admin', 'add', '--username', ALICE.username, '--password-stdin'], `${ALICE.password}\n`);
  cli(['admin', 'add', '--username', VERA.username, '--role', 'viewer', '--password-stdin'], `${VERA.password}\n`);

  serve = await startServe();
  base = `http://127.0.0.1:${serve.port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

after(async () => {
  await browser?.close();
  if (serve) {
    serve.proc.removeAllListeners('exit');
    serve.proc.kill('SIGTERM');
  }
  held.release?.();
  held.server?.closeAllConnections?.();
  held.server?.close();
  rmSync(dir, { recursive: true, force: true });
});

// A fresh browser context and page that records console errors and uncaught
// exceptions; `expected` lists regexps of messages that are fine (e.g. the
// 401 of a wrong password, which Chromium logs as a failed resource load).
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  return {
    page,
    context,
    // Fails on any console error or uncaught exception not matching `expected`.
    assertClean(expected = []) {
      const bad = problems.filter((p) => !expected.some((re) => re.test(p)));
      assert.deepEqual(bad, [], 'the page logged errors');
      problems.length = 0;
    },
  };
}

async function shot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

async function signIn(page, who) {
  await page.goto(`${base}/admin/`);
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
}

async function go(page, name, heading) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { name: heading ?? name, level: 1 }).waitFor();
}

// ---------------------------------------------------------------------------
// Tests (run in order; they share the database)
// ---------------------------------------------------------------------------

test('the dashboard is served from the binary with caching and security headers', async () => {
  const redirect = await fetch(`${base}/admin`, { redirect: 'manual' });
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get('location'), '/admin/');

  const page = await fetch(`${base}/admin/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, /default-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  const html = await page.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.doesNotMatch(html, /https?:\/\//, 'no external resources');

  const js = await fetch(`${base}/admin/app.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  const etag = js.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]+"$/);
  const again = await fetch(`${base}/admin/app.js`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  assert.equal((await again.text()).length, 0);
  const head = await fetch(`${base}/admin/app.css`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.ok(Number(head.headers.get('content-length')) > 0);

  assert.equal((await fetch(`${base}/admin/missing.js`)).status, 404);
  assert.equal((await fetch(`${base}/admin/../admin/api/me`)).status, 401); // the API, not a file
  assert.equal((await fetch(`${base}/admin/`, { method: 'POST' })).status, 405);
});

test('sign in: a wrong password is refused, the right one opens the dashboard', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await page.goto(`${base}/admin/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot(page, 'sign-in');
    await page.getByLabel('Username').fill(ALICE.username);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong user name or password' }).waitFor();
    assertClean([/status of 401/]);

    await page.getByLabel('Password').fill(ALICE.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
    await page.getByText('alice', { exact: false }).first().waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('llm-proxy.token'));
    assert.equal(stored.split('.').length, 3, 'a login token is kept in sessionStorage');
    assertClean();
  } finally {
    await context.close();
  }
});

test('keys: create (shown once, copyable), see it listed, edit limits, disable', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await signIn(page, ALICE);
    await go(page, 'Keys');
    await page.getByRole('button', { name: 'Create key' }).click();
    const create = page.getByRole('dialog', { name: 'Create key' });
    await create.getByLabel('Name').fill('browser-key');
    await create.getByLabel('Access to').selectOption({ label: 'echo' });
    await create.getByLabel('Requests per minute (RPM)').fill('100');
    await create.getByRole('button', { name: 'Create key' }).click();

    const shown = page.getByRole('dialog', { name: 'Key created' });
    const keyBox = shown.getByLabel('New key');
    await keyBox.waitFor();
    const key = await keyBox.inputValue();
    assert.match(key, /^sk-[A-Za-z0-9_-]{20,}$/);
    await shown.getByRole('button', { name: 'Copy' }).click();
    await shown.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
    await shot(page, 'key-created');
    await shown.getByRole('button', { name: 'Done' }).click();
    await shown.waitFor({ state: 'detached' });

    // Listed, with its hint only: the key itself is gone from the page.
    const row = page.getByRole('row').filter({ hasText: 'browser-key' });
    await row.getByText('Enabled').waitFor();
    await row.getByText('100 rpm').waitFor();
    assert.ok(!(await page.content()).includes(key), 'the full key is shown only once');
    const stored = cli(['vkey', 'show', 'browser-key']);
    assert.equal(stored.enabled, true);
    assert.ok(await row.getByText(stored.key_hint).isVisible());

    // Limits on the assignment.
    await row.getByRole('button', { name: 'Edit limits' }).click();
    const limits = page.getByRole('dialog', { name: /Limits of browser-key/ });
    await limits.getByLabel('Requests per minute (RPM)').fill('50');
    await limits.getByLabel('Token limit').fill('20000');
    await limits.getByLabel('Token window').selectOption('hour');
    await limits.getByRole('button', { name: 'Save limits' }).click();
    await row.getByText('50 rpm · 20k tokens/hour').waitFor();
    const grant = cli(['vkey', 'show', 'browser-key']).assignments[0];
    assert.equal(grant.rpm, 50);
    assert.equal(grant.token_limit, 20000);
    assert.equal(grant.token_window, 'hour');

    // Rotate: a new key, shown once; the old one is void.
    await row.getByRole('button', { name: 'Rotate key browser-key' }).click();
    await page.getByRole('dialog', { name: 'Rotate browser-key?' }).getByRole('button', { name: 'Rotate key' }).click();
    const rotated = page.getByRole('dialog', { name: 'Key rotated' });
    const newKey = await rotated.getByLabel('New key').inputValue();
    assert.match(newKey, /^sk-/);
    assert.notEqual(newKey, key);
    await rotated.getByRole('button', { name: 'Done' }).click();
    await rotated.waitFor({ state: 'detached' });
    await row.getByText(cli(['vkey', 'show', 'browser-key']).key_hint).waitFor();

    // Disable.
    await row.getByRole('button', { name: 'Disable key browser-key' }).click();
    await row.getByText('Disabled').waitFor();
    await row.getByRole('button', { name: 'Enable key browser-key' }).waitFor();
    assert.equal(cli(['vkey', 'show', 'browser-key']).enabled, false);
    // serve picks the change up on its next config reload.
    await eventually(async () => {
      const r = await fetch(`${base}/v1/models`, { headers: { Authorization: `Bearer ${key}` } });
      assert.equal(r.status, 401, 'a disabled key is refused');
    }, { message: 'the disabled key to be refused' });
    await shot(page, 'keys');
    assertClean();
  } finally {
    await context.close();
  }
});

test('plans: create and edit one, a key on it with key-wide limits, budgets, delete in use', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await signIn(page, ALICE);
    await go(page, 'Plans');
    await page.getByText('No plans yet.', { exact: false }).waitFor();
    await page.getByRole('button', { name: 'Create plan' }).click();
    const create = page.getByRole('dialog', { name: 'Create plan' });
    await create.getByLabel('Name').fill('gold');
    await create.getByLabel('Requests per minute (RPM)').fill('30');
    await create.getByLabel('Budget (USD)', { exact: true }).fill('5');
    await create.getByLabel('Budget window', { exact: true }).selectOption('day');
    await create.getByRole('button', { name: 'Create plan' }).click();
    const gold = page.getByRole('row').filter({ hasText: 'gold' });
    await gold.getByText('30 rpm · $5.00/day').waitFor();
    let stored = cli(['plan', 'show', 'gold']);
    assert.equal(stored.rpm, 30);
    assert.equal(stored.budget, 5);
    assert.equal(stored.budget_window, 'day');

    // Edit: a field emptied removes that limit.
    await gold.getByRole('button', { name: 'Edit plan gold' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit plan gold' });
    assert.equal(await edit.getByLabel('Requests per minute (RPM)').inputValue(), '30');
    await edit.getByLabel('Requests per minute (RPM)').fill('');
    await edit.getByLabel('Max parallel requests').fill('3');
    await edit.getByRole('button', { name: 'Save plan' }).click();
    await gold.getByText('$5.00/day · 3 parallel').waitFor();
    stored = cli(['plan', 'show', 'gold']);
    assert.equal(stored.rpm, null);
    assert.equal(stored.max_parallel, 3);
    await shot(page, 'plans');

    // A key on the plan, with a limit of its grant's own and a key-wide budget.
    await go(page, 'Keys');
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = page.getByRole('dialog', { name: 'Create key' });
    await key.getByLabel('Name').fill('plan-key');
    await key.getByLabel('Access to').selectOption({ label: 'echo' });
    await key.getByLabel('Plan', { exact: true }).selectOption('gold');
    await key.getByLabel('Requests per hour').fill('100');
    await key.getByLabel('Key budget (USD)').fill('20');
    await key.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByRole('dialog', { name: 'Key created' });
    await shown.getByRole('button', { name: 'Done' }).click();
    await shown.waitFor({ state: 'detached' });
    const row = page.getByRole('table', { name: 'Virtual keys' }).getByRole('row').filter({ hasText: 'plan-key' });
    await row.getByText('plan gold · 100 req/hour').waitFor();
    await row.getByText('whole key: $20.00/month').waitFor();
    const k = cli(['vkey', 'show', 'plan-key']);
    assert.equal(k.key_budget, 20);
    assert.equal(k.assignments[0].plan, 'gold');
    assert.equal(k.assignments[0].rph, 100);
    assert.equal(k.assignments[0].effective.max_parallel, 3);

    // Spend against both budgets: the plan's (per day) and the key's.
    const budgets = page.getByRole('region', { name: 'Budgets' });
    const spent = budgets.getByRole('row').filter({ hasText: 'plan-key' });
    await eventually(async () => assert.equal(await spent.count(), 2), { message: 'two budget rows' });
    await spent.filter({ hasText: 'plan gold' }).getByText('$5.00').first().waitFor();
    await spent.filter({ hasText: 'the whole key' }).getByText('$20.00').first().waitFor();

    await row.getByRole('button', { name: 'Edit key-wide limits of plan-key' }).click();
    const keyLimits = page.getByRole('dialog', { name: 'Key-wide limits of plan-key' });
    assert.equal(await keyLimits.getByLabel('Key budget (USD)').inputValue(), '20');
    await keyLimits.getByLabel('Key token limit').fill('5000');
    await keyLimits.getByRole('button', { name: 'Save key limits' }).click();
    await row.getByText('whole key: $20.00/month · 5k tokens/day').waitFor();
    assert.equal(cli(['vkey', 'show', 'plan-key']).key_token_limit, 5000);
    await shot(page, 'keys-plans-budgets');

    // Deleting a plan in use asks again, then detaches it.
    await go(page, 'Plans');
    await gold.getByRole('cell', { name: '1', exact: true }).waitFor();
    await gold.getByRole('button', { name: 'Delete plan gold' }).click();
    await page.getByRole('dialog', { name: 'Delete plan gold?' }).getByRole('button', { name: 'Delete plan' }).click();
    await page.getByRole('dialog', { name: 'gold is in use' }).getByRole('button', { name: 'Detach and delete' }).click();
    await gold.waitFor({ state: 'detached' });
    assert.deepEqual(cli(['plan', 'list']), []);
    assert.equal(cli(['vkey', 'show', 'plan-key']).assignments[0].plan, null);
    cli(['plan', 'add', '--name', 'silver', '--rpm', '60']); // for the viewer's test
    assertClean([/status of 409/]);
  } finally {
    await context.close();
  }
});

test('models and connections: listed, and a model added from the page', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await signIn(page, ALICE);
    await go(page, 'Connections');
    const demo = page.getByRole('row').filter({ hasText: 'demo' });
    await demo.getByText('mock').waitFor();
    const up = page.getByRole('row').filter({ hasText: 'openai-compatible' });
    await up.getByText('****alue').waitFor(); // the API key, masked
    assert.ok(!(await page.content()).includes('sk-upstream-secret-value'));
    await shot(page, 'connections');

    await page.getByRole('button', { name: 'Add connection' }).click();
    const addConn = page.getByRole('dialog', { name: 'Add connection' });
    await addConn.getByLabel('Name').fill('spare');
    await addConn.getByLabel('Provider').selectOption('mock');
    await addConn.getByLabel('Timeout (s)').fill('30');
    await addConn.getByRole('button', { name: 'Add connection' }).click();
    const spare = page.getByRole('row').filter({ hasText: 'spare' });
    await spare.getByText('30 s').waitFor();
    assert.equal(cli(['connection', 'show', 'spare']).provider, 'mock');
    await spare.getByRole('button', { name: 'Delete connection spare' }).click();
    await page.getByRole('dialog', { name: 'Delete connection spare?' })
      .getByRole('button', { name: 'Delete connection' }).click();
    await spare.waitFor({ state: 'detached' });

    await go(page, 'Models');
    await page.getByRole('row').filter({ hasText: 'echo' }).getByText('demo').waitFor();
    await page.getByRole('button', { name: 'Add model' }).click();
    const add = page.getByRole('dialog', { name: 'Add model' });
    await add.getByLabel('Alias').fill('echo-2');
    await add.getByLabel('Remote model').fill('echo-two');
    await add.getByLabel('Connection').selectOption({ label: 'demo (mock)' });
    await add.getByLabel('Input price').fill('0.5');
    await add.getByRole('button', { name: 'Add model' }).click();
    await page.getByRole('row').filter({ hasText: 'echo-two' }).waitFor();
    assert.equal(cli(['model', 'show', 'echo-2']).remote, 'echo-two');
    await shot(page, 'models');

    await page.getByRole('button', { name: 'Delete model echo-2' }).click();
    await page.getByRole('dialog', { name: 'Delete model echo-2?' }).getByRole('button', { name: 'Delete model' }).click();
    await page.getByRole('row').filter({ hasText: 'echo-two' }).waitFor({ state: 'detached' });
    assertClean();
  } finally {
    await context.close();
  }
});

test('playground: the reply streams in token by token, then usage and latency', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await signIn(page, ALICE);
    await go(page, 'Playground');
    await page.getByLabel('Virtual key').fill(playKey);
    await page.getByRole('button', { name: 'Load models' }).click();
    const model = page.getByLabel('Model');
    await eventually(async () => {
      const options = await model.locator('option').allTextContents();
      assert.deepEqual(options.map((o) => o.split(' ')[0]).sort(), ['echo', 'held']);
    }, { message: 'the key\'s models' });
    await model.selectOption('echo');

    // The reply's text after each piece the page adds to it (mutation records
    // keep every insertion, even when several arrive in one network read).
    const reply = page.getByRole('log', { name: 'Reply' });
    await reply.evaluate((el) => {
      window.replySnapshots = [];
      let text = '';
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.removedNodes.length) text = el.textContent;
          for (const n of r.addedNodes) {
            text += n.textContent;
            window.replySnapshots.push(text);
          }
        }
      }).observe(el, { childList: true });
    });
    const prompt = 'one two three four five six seven eight';
    await page.getByLabel('Prompt').fill(prompt);
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').filter({ hasText: 'Done: 8 chunks received.' }).waitFor();
    assert.equal(await reply.textContent(), prompt);
    const snapshots = await page.evaluate(() => window.replySnapshots);
    assert.equal(snapshots.length, 8, `one insertion per token: ${JSON.stringify(snapshots)}`);
    for (let i = 1; i < snapshots.length; i++) assert.ok(snapshots[i].startsWith(snapshots[i - 1]));
    assert.equal(snapshots[0], 'one');
    assert.equal(snapshots[7], prompt);

    const stats = page.getByRole('table', { name: 'Reply statistics' });
    await stats.getByRole('row', { name: /Prompt tokens\s*8/ }).waitFor();
    await stats.getByRole('row', { name: /Completion tokens\s*8/ }).waitFor();
    await stats.getByRole('row', { name: /Total tokens\s*16/ }).waitFor();
    assert.match(await stats.getByRole('row', { name: /Time to first token/ }).textContent(), /\d+(\.\d+)? (ms|s)/);
    assert.match(await stats.getByRole('row', { name: /Total time/ }).textContent(), /\d+(\.\d+)? (ms|s)/);
    await shot(page, 'playground');

    // A held upstream: the first token shows while the stream is still open.
    await model.selectOption('held');
    await page.getByLabel('Prompt').fill('greek letters');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').filter({ hasText: 'Streaming…' }).waitFor();
    await eventually(async () => assert.equal(await reply.textContent(), 'alpha'), { message: 'the first token' });
    assert.ok(await page.getByRole('button', { name: 'Stop' }).isEnabled(), 'still streaming');
    await shot(page, 'playground-streaming');
    held.release();
    await page.getByRole('status').filter({ hasText: 'Done: 4 chunks received.' }).waitFor();
    assert.equal(await reply.textContent(), 'alpha beta gamma delta');
    await stats.getByRole('row', { name: /Completion tokens\s*4/ }).waitFor();
    assertClean();
  } finally {
    await context.close();
  }
});

test('usage and slow requests show what the playground did', async () => {
  // The usage writer batches: wait until the playground's requests are stored.
  await eventually(() => cli(['usage', '--limit', '0']).length >= 2, { message: 'usage records' });
  const { page, context, assertClean } = await openPage();
  try {
    await signIn(page, ALICE);
    const requests = page.getByRole('group', { name: 'Requests' });
    await requests.getByText('2', { exact: true }).waitFor();
    await page.getByRole('group', { name: 'Cost' }).getByText('$0.000024').waitFor();
    const charts = page.getByRole('img');
    await eventually(async () => assert.equal(await charts.count(), 4), { message: 'four charts' });
    for (const name of ['Requests per day', 'Tokens per day', 'Cost per day', 'Latency per day']) {
      await page.getByRole('img', { name: new RegExp(`^${name}`) }).waitFor();
    }
    const topKeys = page.getByRole('region', { name: 'Top keys' });
    await topKeys.getByRole('row').filter({ hasText: 'playground-key' }).waitFor();
    const topModels = page.getByRole('region', { name: 'Top models' });
    await topModels.getByRole('row').filter({ hasText: 'echo' }).waitFor();
    await topModels.getByRole('row').filter({ hasText: 'held' }).waitFor();
    // Latency percentiles, when the server reports them.
    const day = cli(['usage', '--by', 'day'])[0];
    if (typeof day.p95_latency_ms === 'number') {
      await topModels.getByRole('columnheader', { name: 'p95' }).waitFor();
      await page.getByRole('group', { name: 'p95 latency' }).waitFor();
    }
    await page.getByLabel('Period').selectOption('30d');
    await requests.getByText('2', { exact: true }).waitFor();
    await shot(page, 'usage');

    await go(page, 'Slow requests');
    const rows = page.getByRole('table', { name: 'Slow requests' }).getByRole('row');
    await eventually(async () => assert.equal(await rows.count(), 3), { message: 'two slow-request rows' });
    // Slowest first: the held stream waited for the test.
    assert.match(await rows.nth(1).textContent(), /held/);
    await shot(page, 'slow');
    assertClean();
  } finally {
    await context.close();
  }
});

test('a viewer sees everything but no write controls', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await signIn(page, VERA);
    await page.getByText('viewer · read-only').waitFor();
    const writes = page.getByRole('button', {
      name: /create|add|delete|disable|enable|rotate|edit|remove/i,
    });
    await go(page, 'Keys');
    await page.getByRole('row').filter({ hasText: 'playground-key' }).waitFor();
    assert.equal(await writes.count(), 0, 'no write buttons on Keys');
    await shot(page, 'viewer-keys');
    await page.getByRole('region', { name: 'Budgets' }).waitFor();
    await go(page, 'Plans');
    await page.getByRole('row').filter({ hasText: 'silver' }).getByText('60 rpm').waitFor();
    assert.equal(await writes.count(), 0, 'no write buttons on Plans');
    await go(page, 'Models');
    await page.getByRole('row').filter({ hasText: 'echo' }).first().waitFor();
    assert.equal(await writes.count(), 0, 'no write buttons on Models');
    await go(page, 'Connections');
    await page.getByRole('row').filter({ hasText: 'demo' }).waitFor();
    assert.equal(await writes.count(), 0, 'no write buttons on Connections');
    assertClean();
  } finally {
    await context.close();
  }
});

test('an invalid session goes back to sign-in; the master key signs in too', async () => {
  const { page, context, assertClean } = await openPage();
  try {
    await signIn(page, ALICE);
    await page.evaluate(() => sessionStorage.setItem('llm-proxy.token', 'eyJhbGciOiJIUzI1NiJ9.e30.forged'));
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByText('Your session has expired or is no longer valid').waitFor();
    // Every request the reloaded page started with the forged token is refused;
    // wait for all of them to settle so a late 401 is not blamed on what follows.
    await page.waitForLoadState('networkidle');
    assertClean([/status of 401/]);

    await page.getByText('Use the master key instead').click();
    await page.getByLabel('Master key').fill(MASTER);
    await page.getByRole('button', { name: 'Sign in with master key' }).click();
    await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
    await page.getByText('master key').first().waitFor();
    await go(page, 'Keys');
    await page.getByRole('button', { name: 'Create key' }).waitFor();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('llm-proxy.token')), null);
    assertClean();
  } finally {
    await context.close();
  }
});
