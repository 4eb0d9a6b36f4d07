// The official OpenAI Node SDK, used exactly as an application would, against
// `llm-proxy serve`: chat (plain and streamed), completions, embeddings, model
// listing, and the SDK's typed errors for 401/403/404/429. A second part puts
// a small OpenAI-shaped upstream (fakes.mjs) behind an `openai-compatible`
// connection and streams through the proxy to it.
//
// Needs LLM_PROXY_BIN (the built binary). Run with: node --test openai_sdk.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { close, collect, startServe, workspace } from './harness.mjs';
import { OPENAI_KEY as UPSTREAM_KEY, startOpenAI } from './fakes.mjs';

const ws = workspace('llm-proxy-sdk-');
const cli = ws.cli;
let upstream; // the OpenAI-shaped fake behind the `up` connection (fakes.mjs)
let serve;
const keys = {};
let client; // the main key: models echo and upmodel

function sdk(apiKey, options = {}) {
  return new OpenAI({ baseURL: serve.baseURL, apiKey, maxRetries: 0, timeout: 10_000, ...options });
}

before(async () => {
  upstream = await startOpenAI();
  cli('connection', 'add', '--name', 'mock', '--provider', 'mock');
  cli('model', 'add', '--name', 'echo', '--remote', 'echo-1', '--conn-id', 'mock');
  cli('model', 'add', '--name', 'other', '--remote', 'other-1', '--conn-id', 'mock');
  cli('connection', 'add', '--name', 'up', '--provider', 'openai-compatible',
    '--endpoint', `${upstream.url}/v1`, '--api-key', UPSTREAM_KEY, '--timeout', '10');
  cli('model', 'add', '--name', 'upmodel', '--remote', 'up-remote-1', '--conn-id', 'up');
  const main = cli('vkey', 'add', '--name', 'sdk-main', '--model-id', 'echo', '--model-id', 'upmodel');
  const limited = cli('vkey', 'add', '--name', 'sdk-limited', '--model-id', 'echo', '--tps', '1');
  const retry = cli('vkey', 'add', '--name', 'sdk-retry', '--model-id', 'echo', '--tps', '1');
  for (const [name, doc] of [['main', main], ['limited', limited], ['retry', retry]]) {
    assert.match(doc.key, /^sk-/, `vkey add --json for ${name} prints the key`);
    keys[name] = doc.key;
  }
  serve = await startServe(ws);
  client = sdk(keys.main);
});

after(async () => {
  await serve?.kill();
  await close(upstream?.server);
  ws.cleanup();
});

// ---------------------------------------------------------------------------
// The mock provider
// ---------------------------------------------------------------------------
test('chat.completions.create echoes the last user message with usage', async () => {
  const r = await client.chat.completions.create({
    model: 'echo',
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'first message' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'hello from the sdk' },
    ],
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'hello from the sdk');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage, 'usage is present');
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.completion_tokens, 4);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.match(r._request_id ?? '', /\S/, 'x-request-id reaches the SDK as _request_id');
});

test('chat.completions.create can be read with .withResponse()', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'echo', messages: [{ role: 'user', content: 'raw' }] })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /application\/json/);
  assert.equal(data.choices[0].message.content, 'raw');
});

const deltas = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');

test('streamed chat: concatenated deltas equal the echo, no usage unless asked', async () => {
  const text = 'stream me these five words';
  const stream = await client.chat.completions.create({
    model: 'echo',
    messages: [{ role: 'user', content: text }],
    stream: true,
  });
  const chunks = await collect(stream);
  assert.ok(chunks.length >= 3, `several chunks, got ${chunks.length}`);
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
  assert.equal(deltas(chunks), text);
  assert.equal(chunks.filter((c) => c.usage).length, 0, 'no usage chunk when not requested');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

test('streamed chat with stream_options.include_usage ends with a usage chunk', async () => {
  const text = 'count my tokens please';
  const stream = await client.chat.completions.create({
    model: 'echo',
    messages: [{ role: 'user', content: text }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = await collect(stream);
  assert.equal(deltas(chunks), text);
  const last = chunks.at(-1);
  assert.ok(last.usage, 'the final chunk carries usage');
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 4);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  assert.equal(chunks.slice(0, -1).filter((c) => c.usage).length, 0, 'only the final chunk has usage');
});

test('stream can be aborted early without breaking the client', async () => {
  const stream = await client.chat.completions.create({
    model: 'echo',
    messages: [{ role: 'user', content: 'one two three four five six' }],
    stream: true,
  });
  for await (const _chunk of stream) break; // leaves the stream early
  const r = await client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'after' }] });
  assert.equal(r.choices[0].message.content, 'after');
});

test('completions.create echoes the prompt', async () => {
  const r = await client.completions.create({ model: 'echo', prompt: 'complete this text' });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, 'complete this text');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage && r.usage.total_tokens > 0);
});

test('streamed completions.create', async () => {
  const stream = await client.completions.create({ model: 'echo', prompt: 'a streamed prompt', stream: true });
  const chunks = await collect(stream);
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), 'a streamed prompt');
});

test('embeddings.create with encoding_format float returns arrays of numbers', async () => {
  const r = await client.embeddings.create({ model: 'echo', input: ['alpha', 'beta'], encoding_format: 'float' });
  assert.equal(r.object, 'list');
  assert.equal(r.data.length, 2);
  for (const [i, d] of r.data.entries()) {
    assert.equal(d.index, i);
    assert.ok(Array.isArray(d.embedding) && d.embedding.length > 0);
    for (const x of d.embedding) assert.equal(typeof x, 'number');
  }
  assert.notDeepEqual(r.data[0].embedding, r.data[1].embedding);
  assert.ok(r.usage.prompt_tokens > 0);
});

// The SDK sends encoding_format "base64" when the caller does not choose one
// and decodes the reply as little-endian float32; a server that ignores the
// field and sends floats makes the SDK return garbage.
test('embeddings.create with the SDK default encoding (base64) matches the float vector', async () => {
  const floats = await client.embeddings.create({ model: 'echo', input: 'same text', encoding_format: 'float' });
  const dflt = await client.embeddings.create({ model: 'echo', input: 'same text' });
  const want = floats.data[0].embedding;
  const got = dflt.data[0].embedding;
  assert.ok(Array.isArray(got));
  assert.equal(got.length, want.length, `decoded ${got.length} numbers, want ${want.length} (was encoding_format=base64 honoured?)`);
  for (let i = 0; i < want.length; ++i) assert.ok(Math.abs(got[i] - want[i]) < 1e-6, `component ${i}: ${got[i]} vs ${want[i]}`);
});

test('models.list() lists the aliases the key may use', async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    ids.push(m.id);
  }
  assert.ok(ids.includes('echo'), `echo in ${ids}`);
  assert.ok(ids.includes('upmodel'), `upmodel in ${ids}`);
  assert.ok(!ids.includes('other'), `a key sees only its models: ${ids}`);
});

async function rejects(promise, Klass, status) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof Klass, `expected ${Klass.name}, got ${e?.constructor?.name}: ${e?.message}`);
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected ${Klass.name}, but the call succeeded`);
}

test('a wrong key raises AuthenticationError (401)', async () => {
  const bad = sdk('sk-not-a-real-key');
  const e = await rejects(bad.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }] }),
    OpenAI.AuthenticationError, 401);
  assert.equal(e.code, 'invalid_api_key');
  assert.equal(e.type, 'invalid_request_error');
  await rejects(bad.models.list(), OpenAI.AuthenticationError, 401);
});

test('a model the key is not assigned raises PermissionDeniedError (403)', async () => {
  const e = await rejects(client.chat.completions.create({ model: 'other', messages: [{ role: 'user', content: 'x' }] }),
    OpenAI.PermissionDeniedError, 403);
  assert.equal(e.type, 'permission_error');
  assert.equal(e.param, 'model');
});

test('an unknown model raises NotFoundError (404)', async () => {
  const e = await rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    OpenAI.NotFoundError, 404);
  assert.equal(e.code, 'model_not_found');
});

test('a missing required field raises BadRequestError (400)', async () => {
  const e = await rejects(client.chat.completions.create({ model: 'echo' }), OpenAI.BadRequestError, 400);
  assert.equal(e.param, 'messages');
});

test('a burst over --tps 1 raises RateLimitError (429)', async () => {
  const limited = sdk(keys.limited);
  const results = await Promise.allSettled(
    Array.from({ length: 6 }, () =>
      limited.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'burst' }] })),
  );
  const ok = results.filter((r) => r.status === 'fulfilled');
  const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  assert.ok(ok.length >= 1, 'the bucket starts with one request');
  assert.ok(failed.length >= 1, 'some of the burst is refused');
  for (const e of failed) {
    assert.ok(e instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
  }
});

test("the SDK's own retries ride out a 429 using Retry-After", async () => {
  const retrying = sdk(keys.retry, { maxRetries: 3 });
  const ask = () => retrying.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'again' }] });
  const first = await ask();
  const second = await ask(); // refused at first (1 request/s), then retried by the SDK
  assert.equal(first.choices[0].message.content, 'again');
  assert.equal(second.choices[0].message.content, 'again');
});

// ---------------------------------------------------------------------------
// An openai-compatible upstream behind the proxy
// ---------------------------------------------------------------------------
test('openai-compatible upstream: non-streaming chat through the proxy', async () => {
  upstream.requests.length = 0;
  const r = await client.chat.completions.create({ model: 'upmodel', messages: [{ role: 'user', content: 'via upstream' }] });
  assert.equal(r.choices[0].message.content, 'up: via upstream');
  assert.equal(r.usage.completion_tokens, 3);
  assert.equal(upstream.requests.length, 1);
  const seen = upstream.requests[0];
  assert.equal(seen.body.model, 'up-remote-1', 'the alias is rewritten to the remote name');
  assert.equal(seen.headers.authorization, `Bearer ${UPSTREAM_KEY}`, "the connection's key, never the virtual key");
});

test('openai-compatible upstream: SDK streaming relays chunks as they arrive', async () => {
  upstream.requests.length = 0;
  let release;
  let releasedByClient = false;
  upstream.hold = new Promise((r) => {
    release = r;
  });
  // Never hang the suite if the first word is held back by the proxy.
  const safety = setTimeout(() => release(), 5_000);
  try {
    const text = 'streamed through the proxy';
    const stream = await client.chat.completions.create({
      model: 'upmodel',
      messages: [{ role: 'user', content: text }],
      stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunk.choices[0]?.delta?.content && !releasedByClient) {
        // The upstream is paused after its first word: this chunk got here
        // before the upstream finished.
        releasedByClient = true;
        release();
      }
    }
    assert.ok(releasedByClient, 'a content chunk arrived while the upstream held the rest');
    assert.equal(deltas(chunks), `up: ${text}`);
    assert.equal(chunks.filter((c) => c.usage).length, 0,
      'the usage chunk the proxy asked for on its own is not shown to the client');
    assert.equal(upstream.requests.length, 1);
    assert.equal(upstream.requests[0].body.stream, true);
    assert.equal(upstream.requests[0].body.stream_options?.include_usage, true,
      'the proxy asks the upstream for usage so it can record it');
  } finally {
    clearTimeout(safety);
    upstream.hold = null;
  }
});

test('openai-compatible upstream: streaming with include_usage gets the usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'upmodel',
    messages: [{ role: 'user', content: 'with usage' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = await collect(stream);
  assert.equal(deltas(chunks), 'up: with usage');
  const last = chunks.at(-1);
  assert.ok(last.usage, 'the final chunk carries usage');
  assert.equal(last.usage.completion_tokens, 3);
  assert.equal(last.usage.prompt_tokens, 2);
});

test('openai-compatible upstream: an upstream 400 reaches the SDK as BadRequestError', async () => {
  const e = await rejects(client.chat.completions.create({ model: 'upmodel', messages: [{ role: 'user', content: 'trigger-400' }] }),
    OpenAI.BadRequestError, 400);
  assert.equal(e.message.includes('upstream says no'), true, e.message);
  assert.equal(e.code, 'upstream_no');
});

// ---------------------------------------------------------------------------
// Shutdown and the usage it recorded
// ---------------------------------------------------------------------------
test('serve stops on SIGTERM with exit 0 and has recorded usage', async () => {
  const result = await serve.stop(15_000);
  assert.notEqual(result, 'timeout', `serve did not stop within 15 s of SIGTERM:\n${serve.stderr}`);
  assert.deepEqual(result, { code: 0, signal: null }, serve.stderr);

  const records = cli('usage', '--limit', '0');
  assert.ok(Array.isArray(records));
  const main = records.filter((r) => r.vkey_name === 'sdk-main');
  const ok = main.filter((r) => r.status === 200);
  assert.ok(ok.length >= 10, `usage records for the main key: ${main.length}`);
  const up = ok.filter((r) => r.model === 'upmodel');
  assert.ok(up.length >= 3, 'upstream calls are recorded');
  for (const r of up) assert.ok(r.total_tokens > 0, `upstream usage has tokens: ${JSON.stringify(r)}`);
  const limitedRecords = records.filter((r) => r.vkey_name === 'sdk-limited');
  assert.ok(limitedRecords.some((r) => r.status === 429), 'refused requests are recorded with 429');
});
