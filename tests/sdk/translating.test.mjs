// The official OpenAI Node SDK, unchanged, against `llm-proxy serve` in front
// of the translating providers: an `anthropic` connection and a `google`
// connection, each behind a small fake upstream in this file that speaks the
// provider's own wire format (Anthropic Messages API; Gemini generateContent /
// streamGenerateContent?alt=sse). The SDK must not be able to tell: plain and
// streamed chat with usage, a tool call round trip, and an upstream 429 that
// surfaces as the SDK's RateLimitError.
//
// Needs LLM_PROXY_BIN (the built binary). Run with: node --test translating.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';

const BIN = process.env.LLM_PROXY_BIN;
if (!BIN) throw new Error('set LLM_PROXY_BIN to the llm-proxy binary');

const dir = mkdtempSync(join(tmpdir(), 'llm-proxy-sdk-tr-'));
const db = `sqlite://${join(dir, 'sdk.db')}`;
const ANTHROPIC_KEY = 'sk-ant-upstream-secret-42';
const GOOGLE_KEY = 'AIzaSy-upstream-secret-42';

const childEnv = { ...process.env };
for (const name of ['LLM_PROXY_DB', 'DB_TYPE', 'DB_DSN', 'MASTER_KEY']) delete childEnv[name];

function cli(...args) {
  const r = spawnSync(BIN, ['--db', db, '--json', ...args], { env: childEnv, encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`llm-proxy ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  }
  return JSON.parse(r.stdout);
}

const words = (text) => text.split(/\s+/).filter(Boolean);

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function sendJson(res, status, doc, headers = {}) {
  const data = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

function listen(handler) {
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

async function close(server) {
  if (!server) return;
  const closed = new Promise((r) => server.close(() => r()));
  server.closeAllConnections();
  await closed;
}

// ---------------------------------------------------------------------------
// Anthropic: POST /v1/messages (https://docs.anthropic.com/en/api/messages),
// x-api-key + anthropic-version, the SSE event sequence of a streamed message,
// and {"type":"error","error":{...}} errors.
// ---------------------------------------------------------------------------
const anthropic = { server: null, url: '', requests: [] };

function anthropicError(res, status, type, message, headers = {}) {
  sendJson(res, status, { type: 'error', error: { type, message } }, { 'request-id': 'req_err_1', ...headers });
}

// The text of a user message's content (string or blocks).
function anthropicText(content) {
  if (typeof content === 'string') return content;
  return content.filter((b) => b.type === 'text').map((b) => b.text).join(' ');
}

// Checks what Anthropic itself validates; returns an error message or null.
function anthropicInvalid(body) {
  const known = new Set(['model', 'messages', 'max_tokens', 'system', 'stop_sequences', 'stream', 'temperature',
    'top_p', 'top_k', 'tools', 'tool_choice', 'metadata', 'thinking', 'service_tier', 'container', 'mcp_servers']);
  for (const k of Object.keys(body)) if (!known.has(k)) return `${k}: Extra inputs are not permitted`;
  if (typeof body.model !== 'string') return 'model: Field required';
  if (!Number.isInteger(body.max_tokens)) return 'max_tokens: Field required';
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'messages: Field required';
  let previous = null;
  for (const [i, m] of body.messages.entries()) {
    if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (m.role === previous) return 'messages: roles must alternate between "user" and "assistant"';
    previous = m.role;
    if (typeof m.content !== 'string' && !Array.isArray(m.content)) return `messages.${i}.content: Input should be a valid list`;
    for (const b of Array.isArray(m.content) ? m.content : []) {
      if (!['text', 'image', 'document', 'tool_use', 'tool_result', 'thinking'].includes(b.type)) {
        return `messages.${i}.content: Input tag '${b.type}' does not match any of the expected tags`;
      }
      if (b.type === 'tool_use' && (typeof b.id !== 'string' || typeof b.input !== 'object')) return 'tool_use: id and input required';
      if (b.type === 'tool_result' && typeof b.tool_use_id !== 'string') return 'tool_result: tool_use_id required';
    }
  }
  if (body.messages[0].role !== 'user') return 'messages: first message must use the "user" role';
  for (const t of body.tools ?? []) {
    if (typeof t.name !== 'string' || typeof t.input_schema !== 'object') return 'tools: name and input_schema required';
  }
  return null;
}

async function handleAnthropic(req, res) {
  const body = await readJson(req);
  anthropic.requests.push({ url: req.url, headers: req.headers, body });
  if (req.method !== 'POST' || req.url !== '/v1/messages') return anthropicError(res, 404, 'not_found_error', 'Not found');
  if (req.headers['x-api-key'] !== ANTHROPIC_KEY) return anthropicError(res, 401, 'authentication_error', 'invalid x-api-key');
  if (!req.headers['anthropic-version']) return anthropicError(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
  const invalid = anthropicInvalid(body);
  if (invalid) return anthropicError(res, 400, 'invalid_request_error', invalid);

  const last = body.messages.at(-1);
  const results = Array.isArray(last.content) ? last.content.filter((b) => b.type === 'tool_result') : [];
  const text = anthropicText(last.content);
  if (text === 'fail:429') {
    return anthropicError(res, 429, 'rate_limit_error',
      'This request would exceed the rate limit for your organization of 50 requests per minute.',
      { 'retry-after': '7', 'anthropic-ratelimit-requests-remaining': '0' });
  }
  let content;
  let stop_reason = 'end_turn';
  if (results.length) {
    const got = results.map((r) => (typeof r.content === 'string' ? r.content : anthropicText(r.content))).join(',');
    content = [{ type: 'text', text: `result was ${got}` }];
  } else if (body.tools?.length && text.includes('weather')) {
    content = [
      { type: 'text', text: 'Let me check.' },
      { type: 'tool_use', id: 'toolu_01A', name: body.tools[0].name, input: { city: words(text).at(-1) } },
    ];
    stop_reason = 'tool_use';
  } else {
    content = [{ type: 'text', text: `claude: ${text}` }];
  }
  const input_tokens = body.messages.reduce((n, m) => n + words(anthropicText(m.content)).length, 0) +
    words(typeof body.system === 'string' ? body.system : '').length;
  const output_tokens = content.reduce((n, b) => n + (b.type === 'text' ? words(b.text).length : 5), 0);
  const message = {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL', type: 'message', role: 'assistant', model: body.model, content,
    stop_reason, stop_sequence: null, usage: { input_tokens, output_tokens },
  };
  if (!body.stream) return sendJson(res, 200, message, { 'request-id': 'req_01' });

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': 'req_02' });
  const send = (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  send('message_start', { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { input_tokens, output_tokens: 1 } } });
  for (const [index, block] of content.entries()) {
    if (block.type === 'text') {
      send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
      if (index === 0) send('ping', { type: 'ping' });
      const ws = words(block.text);
      for (const [i, w] of ws.entries()) {
        send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: (i ? ' ' : '') + w } });
      }
    } else {
      send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
      const json = JSON.stringify(block.input);
      const cut = Math.floor(json.length / 2);
      for (const partial_json of ['', json.slice(0, cut), json.slice(cut)]) {
        send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } });
      }
    }
    send('content_block_stop', { type: 'content_block_stop', index });
  }
  send('message_delta', { type: 'message_delta', delta: { stop_reason, stop_sequence: null }, usage: { output_tokens } });
  send('message_stop', { type: 'message_stop' });
  res.end();
}

// ---------------------------------------------------------------------------
// Google: POST /v1beta/models/{model}:generateContent | :streamGenerateContent
// ?alt=sse (https://ai.google.dev/api/generate-content), x-goog-api-key,
// GenerateContentResponse replies, `data: {...}\r\n\r\n` chunks, google.rpc
// errors. Gemini 3 models return thought signatures with function calls and
// refuse a history whose function calls lost them.
// ---------------------------------------------------------------------------
const google = { server: null, url: '', requests: [] };
const SIGNATURE = 'c2lnbmF0dXJlLTAx';

function googleError(res, code, status, message, details) {
  sendJson(res, code, { error: { code, message, status, ...(details ? { details } : {}) } });
}

function googleInvalid(body) {
  const top = new Set(['contents', 'systemInstruction', 'generationConfig', 'tools', 'toolConfig', 'safetySettings', 'cachedContent']);
  for (const k of Object.keys(body)) {
    if (!top.has(k)) return `Invalid JSON payload received. Unknown name "${k}": Cannot find field.`;
  }
  const config = new Set(['temperature', 'topP', 'topK', 'maxOutputTokens', 'stopSequences', 'candidateCount', 'seed',
    'presencePenalty', 'frequencyPenalty', 'responseMimeType', 'responseSchema', 'responseJsonSchema', 'thinkingConfig']);
  for (const k of Object.keys(body.generationConfig ?? {})) {
    if (!config.has(k)) return `Invalid JSON payload received. Unknown name "${k}" at 'generation_config': Cannot find field.`;
  }
  if (!Array.isArray(body.contents) || !body.contents.length) return '* GenerateContentRequest.contents: contents is not specified';
  for (const c of body.contents) {
    if (!['user', 'model'].includes(c.role ?? 'user')) return 'Please use a valid role: user, model.';
    if (!c.parts?.length) return 'contents.parts must not be empty.';
  }
  // Gemini's `parameters` is an OpenAPI subset: additionalProperties and friends
  // only go through parametersJsonSchema.
  const subset = new Set(['type', 'format', 'title', 'description', 'nullable', 'enum', 'maxItems', 'minItems', 'properties',
    'required', 'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern', 'example', 'anyOf',
    'propertyOrdering', 'default', 'items', 'minimum', 'maximum']);
  const schemaError = (s, at) => {
    for (const [k, v] of Object.entries(s ?? {})) {
      if (!subset.has(k)) return `Invalid JSON payload received. Unknown name "${k}" at '${at}': Cannot find field.`;
      if (k === 'properties') for (const [name, sub] of Object.entries(v)) { const e = schemaError(sub, `${at}.properties[${name}].value`); if (e) return e; }
      if (k === 'items') { const e = schemaError(v, `${at}.items`); if (e) return e; }
    }
    return null;
  };
  for (const t of body.tools ?? []) {
    for (const [i, d] of (t.functionDeclarations ?? []).entries()) {
      const e = schemaError(d.parameters, `tools[0].function_declarations[${i}].parameters`);
      if (e) return e;
    }
  }
  return null;
}

const partsText = (c) => c.parts.filter((p) => typeof p.text === 'string').map((p) => p.text).join(' ');

async function handleGoogle(req, res) {
  const url = new URL(req.url, 'http://x');
  const body = await readJson(req);
  google.requests.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body });
  const m = url.pathname.match(/^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/);
  if (req.method !== 'POST' || !m) return googleError(res, 404, 'NOT_FOUND', 'Method not found.');
  const [, model, method] = m;
  const key = req.headers['x-goog-api-key'] ?? url.searchParams.get('key');
  if (key !== GOOGLE_KEY) {
    return googleError(res, 400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }]);
  }
  const invalid = googleInvalid(body);
  if (invalid) return googleError(res, 400, 'INVALID_ARGUMENT', invalid);
  if (model.startsWith('gemini-3')) {
    for (const c of body.contents) {
      const call = c.parts.find((p) => p.functionCall);
      if (c.role === 'model' && call && call.thoughtSignature !== SIGNATURE) {
        return googleError(res, 400, 'INVALID_ARGUMENT', 'Function call is missing a thought_signature in functionCall parts. ' +
          'This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance.');
      }
    }
  }
  const last = body.contents.at(-1);
  const text = partsText(last);
  if (text === 'fail:429') {
    return googleError(res, 429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details.', [
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '9s' }]);
  }
  const responses = last.parts.filter((p) => p.functionResponse).map((p) => p.functionResponse);
  const tools = (body.tools ?? []).flatMap((t) => t.functionDeclarations ?? []);
  let parts;
  if (responses.length) {
    parts = [{ text: `result was ${JSON.stringify(responses[0].response)}` }];
  } else if (tools.length && text.includes('weather')) {
    parts = [{ functionCall: { name: tools[0].name, args: { city: words(text).at(-1) } }, thoughtSignature: SIGNATURE }];
  } else {
    parts = words(`gemini: ${text}`).map((w, i, all) => ({ text: w + (i + 1 < all.length ? ' ' : '') }));
  }
  const promptTokenCount = body.contents.reduce((n, c) => n + words(partsText(c)).length, 0) +
    (body.systemInstruction ? words(partsText(body.systemInstruction)).length : 0);
  const candidatesTokenCount = parts.reduce((n, p) => n + (p.text ? 1 : 4), 0);
  const usage = (final) => ({
    promptTokenCount,
    ...(final ? { candidatesTokenCount } : {}),
    totalTokenCount: promptTokenCount + (final ? candidatesTokenCount : 0),
  });
  const responseId = `g-${google.requests.length}`;
  if (method === 'generateContent') {
    const merged = parts[0].text !== undefined ? [{ text: parts.map((p) => p.text).join('') }] : parts;
    return sendJson(res, 200, {
      candidates: [{ content: { parts: merged, role: 'model' }, finishReason: 'STOP', index: 0 }],
      usageMetadata: usage(true), modelVersion: model, responseId,
    });
  }
  if (url.searchParams.get('alt') !== 'sse') return googleError(res, 400, 'INVALID_ARGUMENT', 'expected alt=sse in this test');
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const [i, p] of parts.entries()) {
    const final = i + 1 === parts.length;
    const cand = { content: { parts: [p], role: 'model' }, index: 0, ...(final ? { finishReason: 'STOP' } : {}) };
    res.write(`data: ${JSON.stringify({ candidates: [cand], usageMetadata: usage(final), modelVersion: model, responseId })}\r\n\r\n`);
  }
  res.end();
}

// ---------------------------------------------------------------------------
// llm-proxy serve
// ---------------------------------------------------------------------------
const serve = { proc: null, port: 0, stderr: '', exit: null };

function startServe() {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['--db', db, 'serve', '--listen', '127.0.0.1:0', '--threads', '2', '--grace', '5'], {
      env: childEnv,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    serve.proc = proc;
    serve.exit = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    const timer = setTimeout(() => reject(new Error(`serve did not start in 10 s:\n${serve.stderr}`)), 10_000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      serve.stderr += d;
      const found = serve.stderr.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (found && !serve.port) {
        serve.port = Number(found[1]);
        clearTimeout(timer);
        resolve();
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

process.on('exit', () => {
  if (serve.proc && serve.proc.exitCode === null && serve.proc.signalCode === null) serve.proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => process.exit(128 + { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[signal]));
}

let client;

before(async () => {
  anthropic.server = await listen(handleAnthropic);
  anthropic.url = `http://127.0.0.1:${anthropic.server.address().port}`;
  google.server = await listen(handleGoogle);
  google.url = `http://127.0.0.1:${google.server.address().port}`;
  cli('connection', 'add', '--name', 'claude', '--provider', 'anthropic', '--endpoint', anthropic.url,
    '--api-key', ANTHROPIC_KEY, '--timeout', '10');
  cli('connection', 'add', '--name', 'gemini', '--provider', 'google', '--endpoint', google.url,
    '--api-key', GOOGLE_KEY, '--timeout', '10');
  cli('model', 'add', '--name', 'sonnet', '--remote', 'claude-sonnet-4-5', '--conn-id', 'claude');
  cli('model', 'add', '--name', 'flash', '--remote', 'gemini-2.5-flash', '--conn-id', 'gemini');
  cli('model', 'add', '--name', 'gemini3', '--remote', 'gemini-3-pro-preview', '--conn-id', 'gemini');
  const key = cli('vkey', 'add', '--name', 'sdk-translating', '--model-id', 'sonnet', '--model-id', 'flash',
    '--model-id', 'gemini3');
  await startServe();
  client = new OpenAI({ baseURL: `http://127.0.0.1:${serve.port}/v1`, apiKey: key.key, maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  if (serve.proc && serve.proc.exitCode === null && serve.proc.signalCode === null) {
    serve.proc.kill('SIGKILL');
    await serve.exit;
  }
  await close(anthropic.server);
  await close(google.server);
  rmSync(dir, { recursive: true, force: true });
});

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

const deltas = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    strict: true,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  },
};

// Each provider: its alias, its fake, what the fake echoes, and how the fake
// saw the conversation's messages (roles and text), for assertions.
const PROVIDERS = [
  {
    name: 'anthropic',
    model: 'sonnet',
    toolModel: 'sonnet',
    fake: anthropic,
    prefix: 'claude:',
    seen: (r) => ({
      system: r.body.system,
      turns: r.body.messages.map((m) => [m.role, anthropicText(m.content)]),
    }),
    streamed: (r) => r.body.stream === true,
    key: (r) => r.headers['x-api-key'],
    upstreamKey: ANTHROPIC_KEY,
  },
  {
    name: 'google',
    model: 'flash',
    toolModel: 'gemini3', // checks thought signatures survive the SDK round trip
    fake: google,
    prefix: 'gemini:',
    seen: (r) => ({
      system: r.body.systemInstruction && partsText(r.body.systemInstruction),
      turns: r.body.contents.map((c) => [c.role === 'model' ? 'assistant' : c.role, partsText(c)]),
    }),
    streamed: (r) => r.path.endsWith(':streamGenerateContent') && r.query.alt === 'sse',
    key: (r) => r.headers['x-goog-api-key'],
    upstreamKey: GOOGLE_KEY,
  },
];

for (const p of PROVIDERS) {
  describe(`${p.name} connection through the OpenAI SDK`, () => {
    test('chat.completions.create', async () => {
      p.fake.requests.length = 0;
      const r = await client.chat.completions.create({
        model: p.model,
        max_tokens: 100,
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
          { role: 'user', content: 'tell me something' },
        ],
      });
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.choices.length, 1);
      assert.equal(r.choices[0].message.role, 'assistant');
      assert.equal(r.choices[0].message.content, `${p.prefix} tell me something`);
      assert.equal(r.choices[0].finish_reason, 'stop');
      // prompt: 1 + 1 + 3 words, + 2 system words; completion: 4 words
      assert.deepEqual(r.usage, { prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
      assert.match(r._request_id ?? '', /\S/);

      assert.equal(p.fake.requests.length, 1);
      const seen = p.fake.requests[0];
      assert.equal(p.key(seen), p.upstreamKey, "the connection's key, never the virtual key");
      assert.equal(p.streamed(seen), false);
      assert.deepEqual(p.seen(seen), {
        system: 'Be brief.',
        turns: [['user', 'hi'], ['assistant', 'hello'], ['user', 'tell me something']],
      });
    });

    test('streamed chat with stream_options.include_usage', async () => {
      p.fake.requests.length = 0;
      const stream = await client.chat.completions.create({
        model: p.model,
        messages: [{ role: 'user', content: 'stream these words' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = await collect(stream);
      assert.ok(chunks.length >= 4, `several chunks, got ${chunks.length}`);
      for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(chunks[0].choices[0].delta.role, 'assistant');
      assert.equal(deltas(chunks), `${p.prefix} stream these words`);
      const finishes = chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].finish_reason);
      assert.deepEqual(finishes, ['stop']);
      const last = chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
      assert.equal(chunks.slice(0, -1).filter((c) => c.usage).length, 0, 'only the final chunk has usage');
      assert.equal(p.fake.requests.length, 1);
      assert.equal(p.streamed(p.fake.requests[0]), true);
    });

    test('streamed chat without include_usage has no usage chunk', async () => {
      const stream = await client.chat.completions.create({
        model: p.model,
        messages: [{ role: 'user', content: 'no usage please' }],
        stream: true,
      });
      const chunks = await collect(stream);
      assert.equal(deltas(chunks), `${p.prefix} no usage please`);
      assert.equal(chunks.filter((c) => c.usage).length, 0);
    });

    test('a tool call round trip', async () => {
      p.fake.requests.length = 0;
      const messages = [{ role: 'user', content: 'what is the weather in Lisbon' }];
      const first = await client.chat.completions.create({ model: p.toolModel, messages, tools: [WEATHER_TOOL] });
      const choice = first.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.tool_calls.length, 1);
      const call = choice.message.tool_calls[0];
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      assert.equal(typeof call.function.arguments, 'string');
      assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Lisbon' });
      assert.match(call.id, /\S/);

      // As an application does: the assistant message as received, then the result.
      messages.push(choice.message);
      messages.push({ role: 'tool', tool_call_id: call.id, content: '21C and sunny' });
      const second = await client.chat.completions.create({ model: p.toolModel, messages, tools: [WEATHER_TOOL] });
      assert.equal(second.choices[0].finish_reason, 'stop');
      assert.match(second.choices[0].message.content, /^result was .*21C and sunny/);
      assert.equal(p.fake.requests.length, 2);
    });

    test('a streamed tool call arrives as tool_call deltas', async () => {
      const stream = await client.chat.completions.create({
        model: p.model,
        messages: [{ role: 'user', content: 'weather in Oslo' }],
        tools: [WEATHER_TOOL],
        stream: true,
      });
      const chunks = await collect(stream);
      const calls = {};
      for (const c of chunks) {
        for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
          calls[d.index] ??= { id: '', name: '', arguments: '' };
          if (d.id) calls[d.index].id = d.id;
          if (d.function?.name) calls[d.index].name += d.function.name;
          if (d.function?.arguments) calls[d.index].arguments += d.function.arguments;
        }
      }
      assert.deepEqual(Object.keys(calls), ['0']);
      assert.equal(calls[0].name, 'get_weather');
      assert.match(calls[0].id, /\S/);
      assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Oslo' });
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
    });

    test("an upstream 429 is the SDK's RateLimitError", async () => {
      let error;
      try {
        await client.chat.completions.create({ model: p.model, messages: [{ role: 'user', content: 'fail:429' }] });
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${error?.constructor?.name}: ${error?.message}`);
      assert.equal(error.status, 429);
      assert.match(error.message, /rate limit|quota/i);
      assert.ok(Number(error.headers.get('retry-after')) >= 1, 'a Retry-After the SDK can use');

      let streamError;
      try {
        const stream = await client.chat.completions.create({
          model: p.model, messages: [{ role: 'user', content: 'fail:429' }], stream: true,
        });
        await collect(stream);
      } catch (e) {
        streamError = e;
      }
      assert.ok(streamError instanceof OpenAI.RateLimitError, `streaming: got ${streamError?.constructor?.name}: ${streamError?.message}`);
    });
  });
}

// Polls `predicate` until it returns something truthy (usage is written in batches).
async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('usage of the translated requests is recorded per model', async () => {
  // Per model: 2 plain + 2 streamed + 1 streamed tool call; the tool round trip
  // (2 more) went to sonnet and gemini3.
  const records = await waitFor(() => {
    const all = cli('usage', '--limit', '0');
    const done = ['sonnet', 'flash', 'gemini3'].every((m) => all.filter((r) => r.model === m).length >=
      (m === 'gemini3' ? 2 : m === 'sonnet' ? 8 : 6));
    return done ? all : null;
  }, 5_000, 'the usage records');
  for (const model of ['sonnet', 'flash']) {
    const ok = records.filter((r) => r.model === model && r.status === 200);
    assert.ok(ok.length >= 4, `${model}: ${ok.length} successful records`);
    for (const r of ok) assert.ok(r.prompt_tokens > 0 && r.completion_tokens > 0, JSON.stringify(r));
    assert.ok(records.some((r) => r.model === model && r.status === 429), `${model}: the 429 is recorded`);
  }
  for (const secret of [ANTHROPIC_KEY, GOOGLE_KEY]) assert.ok(!JSON.stringify(records).includes(secret));
});
