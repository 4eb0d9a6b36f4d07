// Shared setup for the SDK suites (openai_sdk, translating, langchain): a
// temporary SQLite workspace provisioned through the real CLI, `llm-proxy
// serve` started on a free port, small HTTP servers for fake upstreams, and
// helpers every suite needs. Each test file runs in its own process
// (node --test), so module state here is per file.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.LLM_PROXY_BIN;
if (!BIN) throw new Error('set LLM_PROXY_BIN to the llm-proxy binary');

// The child's environment without anything that would pick another database
// or a master key.
const childEnv = { ...process.env };
for (const name of ['LLM_PROXY_DB', 'DB_TYPE', 'DB_DSN', 'MASTER_KEY']) delete childEnv[name];

const dirs = [];
const serves = [];

// Never leave serve running or a temp dir behind, even if this process dies abruptly.
process.on('exit', () => {
  for (const s of serves) if (s.running()) s.proc.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => process.exit(128 + { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[signal]));
}

// A temporary database and the CLI bound to it: ws.cli(...args) runs
// `llm-proxy --db <db> --json ARGS` and returns the parsed document.
export function workspace(prefix = 'llm-proxy-sdk-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  const db = `sqlite://${join(dir, 'sdk.db')}`;
  return {
    dir,
    db,
    cli(...args) {
      const r = spawnSync(BIN, ['--db', db, '--json', ...args], { env: childEnv, encoding: 'utf8' });
      if (r.status !== 0) {
        throw new Error(`llm-proxy ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
      }
      return JSON.parse(r.stdout);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Starts `llm-proxy serve` on the workspace's database and resolves once it
// listens. The result has `port`, `baseURL` (…/v1), `stderr`, `exit` (a
// promise of {code, signal}), kill() and stop(): SIGTERM and wait.
export function startServe(ws) {
  const serve = {
    proc: null,
    port: 0,
    baseURL: '',
    stderr: '',
    exit: null,
    running() {
      return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
    },
    async kill() {
      if (this.running()) {
        this.proc.kill('SIGKILL');
        await this.exit;
      }
    },
    // SIGTERM, then the exit status (or 'timeout').
    async stop(timeoutMs = 15_000) {
      this.proc.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => {
        timer = setTimeout(() => r('timeout'), timeoutMs);
      });
      const result = await Promise.race([this.exit, timeout]);
      clearTimeout(timer);
      return result;
    },
  };
  serves.push(serve);
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['--db', ws.db, 'serve', '--listen', '127.0.0.1:0', '--threads', '2', '--grace', '5'], {
      env: childEnv,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    serve.proc = proc;
    serve.exit = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    const timer = setTimeout(() => reject(new Error(`serve did not start in 10 s:\n${serve.stderr}`)), 10_000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      serve.stderr += d;
      const m = serve.stderr.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (m && !serve.port) {
        serve.port = Number(m[1]);
        serve.baseURL = `http://127.0.0.1:${serve.port}/v1`;
        clearTimeout(timer);
        resolve(serve);
      }
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('exit', (code) => {
      if (!serve.port) {
        clearTimeout(timer);
        reject(new Error(`serve exited ${code} before listening:\n${serve.stderr}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------
// HTTP servers for fake upstreams
// ---------------------------------------------------------------------------

export async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export function sendJson(res, status, doc, headers = {}) {
  const data = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

// An HTTP server on a free loopback port running `handler(req, res)` (async);
// a handler that throws answers 500 with the stack.
export function listen(handler) {
  const server = http.createServer((req, res) => {
    handler(req, res).catch((e) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(e?.stack ?? e) } });
      else res.destroy(e);
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

export const urlOf = (server) => `http://127.0.0.1:${server.address().port}`;

export async function close(server) {
  if (!server) return;
  const closed = new Promise((r) => server.close(() => r()));
  server.closeAllConnections();
  await closed;
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

export const words = (text) => text.split(/\s+/).filter(Boolean);

export async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

// Polls `predicate` until it returns something truthy (usage is written in batches).
export async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The error `promise` rejects with; fails when it resolves.
export async function rejection(promise, what = 'the call') {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail(`expected ${what} to fail, but it succeeded`);
}
