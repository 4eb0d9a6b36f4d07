// The official OpenAI Node SDK, unchanged, against `llm-proxy serve` in front
// of the translating providers: an `anthropic` connection and a `google`
// connection, each behind a small fake upstream (fakes.mjs) that speaks the
// provider's own wire format (Anthropic Messages API; Gemini generateContent /
// streamGenerateContent?alt=sse). The SDK must not be able to tell: plain and
// streamed chat with usage, a tool call round trip, and an upstream 429 that
// surfaces as the SDK's RateLimitError.
//
// Needs LLM_PROXY_BIN (the built binary). Run with: node --test translating.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { close, collect, startServe, waitFor, workspace } from './harness.mjs';
import {
  ANTHROPIC_KEY, GOOGLE_KEY, anthropicText, partsText, startAnthropic, startGoogle,
} from './fakes.mjs';

const ws = workspace('llm-proxy-sdk-tr-');
let anthropic;
let google;
let serve;
let client;

before(async () => {
  anthropic = await startAnthropic();
  google = await startGoogle();
  ws.cli('connection', 'add', '--name', 'claude', '--provider', 'anthropic', '--endpoint', anthropic.url,
    '--api-key', ANTHROPIC_KEY, '--timeout', '10');
  ws.cli('connection', 'add', '--name', 'gemini', '--provider', 'google', '--endpoint', google.url,
    '--api-key', GOOGLE_KEY, '--timeout', '10');
  ws.cli('model', 'add', '--name', 'sonnet', '--remote', 'claude-sonnet-4-5', '--conn-id', 'claude');
  ws.cli('model', 'add', '--name', 'flash', '--remote', 'gemini-2.5-flash', '--conn-id', 'gemini');
  ws.cli('model', 'add', '--name', 'gemini3', '--remote', 'gemini-3-pro-preview', '--conn-id', 'gemini');
  const key = ws.cli('vkey', 'add', '--name', 'sdk-translating', '--model-id', 'sonnet', '--model-id', 'flash',
    '--model-id', 'gemini3');
  serve = await startServe(ws);
  client = new OpenAI({ baseURL: serve.baseURL, apiKey: key.key, maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  await serve?.kill();
  await close(anthropic?.server);
  await close(google?.server);
  ws.cleanup();
});

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
    get fake() { return anthropic; },
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
    get fake() { return google; },
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

test('usage of the translated requests is recorded per model', async () => {
  // Per model: 2 plain + 2 streamed + 1 streamed tool call; the tool round trip
  // (2 more) went to sonnet and gemini3.
  const records = await waitFor(() => {
    const all = ws.cli('usage', '--limit', '0');
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
