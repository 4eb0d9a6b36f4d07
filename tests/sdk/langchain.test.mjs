// LangChain's ChatOpenAI (@langchain/openai, pinned in package.json), used as
// an application would, with `configuration: { baseURL }` pointing at
// `llm-proxy serve` and a virtual key as its apiKey. It must not be able to
// tell the proxy from OpenAI, whatever the connection behind the alias: an
// `openai` connection (pass-through) to an OpenAI-shaped fake, and the
// translating `anthropic` and `google` connections to fakes of their own wire
// formats (fakes.mjs). Covered per provider: invoke, stream (chunks
// concatenate to the text, usage metadata present), bindTools with a tool
// call round trip (plain and streamed), and an upstream 429 surfacing as
// LangChain's rate-limit error; then the proxy's own 401/404 and an upstream
// 400, OpenAIEmbeddings, and the usage the proxy recorded.
//
// Needs LLM_PROXY_BIN (the built binary). Run with: node --test langchain.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { getRetryable } from '@langchain/core/errors';
import { ChatOpenAI, OpenAIClient, OpenAIEmbeddings } from '@langchain/openai';
import { close, collect, rejection, startServe, waitFor, workspace } from './harness.mjs';
import {
  ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY, anthropicText, partsText, startAnthropic, startGoogle, startOpenAI,
} from './fakes.mjs';

// LangChain must not phone home (LangSmith tracing) from a test.
for (const name of ['LANGSMITH_TRACING', 'LANGCHAIN_TRACING_V2', 'LANGCHAIN_TRACING']) delete process.env[name];

const ws = workspace('llm-proxy-sdk-lc-');
const fakes = {};
let serve;
let key;

before(async () => {
  fakes.openai = await startOpenAI();
  fakes.anthropic = await startAnthropic();
  fakes.google = await startGoogle();
  ws.cli('connection', 'add', '--name', 'oai', '--provider', 'openai', '--endpoint', `${fakes.openai.url}/v1`,
    '--api-key', OPENAI_KEY, '--timeout', '10');
  ws.cli('connection', 'add', '--name', 'claude', '--provider', 'anthropic', '--endpoint', fakes.anthropic.url,
    '--api-key', ANTHROPIC_KEY, '--timeout', '10');
  ws.cli('connection', 'add', '--name', 'gemini', '--provider', 'google', '--endpoint', fakes.google.url,
    '--api-key', GOOGLE_KEY, '--timeout', '10');
  ws.cli('connection', 'add', '--name', 'mock', '--provider', 'mock');
  ws.cli('model', 'add', '--name', 'gpt', '--remote', 'gpt-4o-mini', '--conn-id', 'oai');
  ws.cli('model', 'add', '--name', 'sonnet', '--remote', 'claude-sonnet-4-5', '--conn-id', 'claude');
  ws.cli('model', 'add', '--name', 'flash', '--remote', 'gemini-2.5-flash', '--conn-id', 'gemini');
  ws.cli('model', 'add', '--name', 'gemini3', '--remote', 'gemini-3-pro-preview', '--conn-id', 'gemini');
  ws.cli('model', 'add', '--name', 'embed', '--remote', 'echo-embed', '--conn-id', 'mock');
  key = ws.cli('vkey', 'add', '--name', 'langchain', '--model-id', 'gpt', '--model-id', 'sonnet',
    '--model-id', 'flash', '--model-id', 'gemini3', '--model-id', 'embed').key;
  serve = await startServe(ws);
});

after(async () => {
  await serve?.kill();
  for (const fake of Object.values(fakes)) await close(fake.server);
  ws.cleanup();
});

// ChatOpenAI exactly as the LangChain docs configure it for an OpenAI-compatible server.
function chat(model, fields = {}) {
  return new ChatOpenAI({
    model, apiKey: key, configuration: { baseURL: serve.baseURL }, maxRetries: 0, timeout: 10_000, ...fields,
  });
}

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    strict: true,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  },
};

// The chunks of a LangChain stream, and their concatenation.
async function streamed(runnable, input) {
  const chunks = await collect(await runnable.stream(input));
  assert.ok(chunks.length > 0);
  for (const c of chunks) assert.ok(AIMessageChunk.isInstance(c), `an AIMessageChunk, got ${c?.constructor?.name}`);
  return { chunks, whole: chunks.reduce((a, b) => a.concat(b)) };
}

const textOf = (m) => (typeof m.content === 'string' ? m.content : m.content.map((b) => b.text ?? '').join(''));

function assertUsage(message, input, output) {
  const u = message.usage_metadata;
  assert.ok(u, 'usage_metadata is present');
  assert.deepEqual([u.input_tokens, u.output_tokens, u.total_tokens], [input, output, input + output]);
}

// Per provider: the alias, its fake, how the fake's reply starts, the usage
// the fake reports for the prompts below, and how to read what it received.
const PROVIDERS = [
  {
    name: 'openai pass-through',
    model: 'gpt',
    fake: () => fakes.openai,
    prefix: 'up:',
    // The OpenAI fake counts the last user message only.
    usage: { invoke: [3, 4], stream: [3, 4] },
    rateLimit: 'wait', // "Please try again in 20s": LangChain may retry after the Retry-After
    turns: (r) => r.body.messages.map((m) => [m.role, typeof m.content === 'string' ? m.content : '']),
    system: (r) => r.body.messages.find((m) => m.role === 'system')?.content,
    streamed: (r) => r.body.stream === true && r.body.stream_options?.include_usage === true,
    key: (r) => r.headers.authorization,
    upstreamKey: `Bearer ${OPENAI_KEY}`,
  },
  {
    name: 'anthropic',
    model: 'sonnet',
    fake: () => fakes.anthropic,
    prefix: 'claude:',
    usage: { invoke: [5, 4], stream: [3, 4] },
    rateLimit: 'wait',
    turns: (r) => r.body.messages.map((m) => [m.role, anthropicText(m.content)]),
    system: (r) => r.body.system,
    streamed: (r) => r.body.stream === true,
    key: (r) => r.headers['x-api-key'],
    upstreamKey: ANTHROPIC_KEY,
  },
  {
    name: 'google',
    model: 'flash',
    fake: () => fakes.google,
    prefix: 'gemini:',
    usage: { invoke: [5, 4], stream: [3, 4] },
    // Gemini words even a per-minute RESOURCE_EXHAUSTED as "You exceeded your
    // current quota, please check your plan and billing details", OpenAI's
    // wording for a spent billing quota. The proxy passes the provider's
    // message on, and LangChain classifies that wording as a quota it must not
    // retry ('stop'), as it would behind Google's own OpenAI-compatible endpoint.
    rateLimit: 'stop',
    turns: (r) => r.body.contents.map((c) => [c.role === 'model' ? 'assistant' : c.role, partsText(c)]),
    system: (r) => r.body.systemInstruction && partsText(r.body.systemInstruction),
    streamed: (r) => r.path.endsWith(':streamGenerateContent') && r.query.alt === 'sse',
    key: (r) => r.headers['x-goog-api-key'],
    upstreamKey: GOOGLE_KEY,
  },
];

for (const p of PROVIDERS) {
  describe(`ChatOpenAI through llm-proxy: ${p.name}`, () => {
    test('invoke', async () => {
      const fake = p.fake();
      fake.requests.length = 0;
      const reply = await chat(p.model).invoke([new SystemMessage('Be brief.'), new HumanMessage('tell me something')]);
      assert.ok(AIMessage.isInstance(reply), `an AIMessage, got ${reply?.constructor?.name}`);
      assert.equal(reply.content, `${p.prefix} tell me something`);
      assert.deepEqual(reply.tool_calls, []);
      assert.equal(reply.response_metadata.finish_reason, 'stop');
      assert.match(reply.response_metadata.model_name ?? '', /\S/);
      assert.match(reply.id ?? '', /\S/);
      assertUsage(reply, ...p.usage.invoke);

      assert.equal(fake.requests.length, 1);
      const seen = fake.requests[0];
      assert.equal(p.key(seen), p.upstreamKey, "the connection's key, never the virtual key");
      assert.equal(p.system(seen), 'Be brief.');
      assert.deepEqual(p.turns(seen).filter(([role]) => role !== 'system'), [['user', 'tell me something']]);
    });

    test('stream: chunks concatenate to the text, with usage metadata', async () => {
      const fake = p.fake();
      fake.requests.length = 0;
      const { chunks, whole } = await streamed(chat(p.model), 'stream these words');
      assert.ok(chunks.length >= 4, `several chunks, got ${chunks.length}`);
      assert.equal(chunks.map(textOf).join(''), `${p.prefix} stream these words`);
      assert.equal(textOf(whole), `${p.prefix} stream these words`);
      assert.ok(chunks.filter((c) => textOf(c)).length >= 3, 'the text arrives in pieces, not at once');
      assertUsage(whole, ...p.usage.stream);
      assert.equal(chunks.filter((c) => c.usage_metadata).length, 1, 'one chunk carries the usage');
      assert.equal(whole.response_metadata.finish_reason, 'stop');
      assert.equal(fake.requests.length, 1);
      assert.ok(p.streamed(fake.requests[0]), 'the upstream was asked for a stream');
    });

    test('bindTools: a tool call round trip', async () => {
      const fake = p.fake();
      fake.requests.length = 0;
      const model = chat(p.model).bindTools([WEATHER_TOOL]);
      const question = new HumanMessage('what is the weather in Lisbon');
      const first = await model.invoke([question]);
      assert.equal(first.tool_calls.length, 1, JSON.stringify(first));
      const [call] = first.tool_calls;
      assert.equal(call.name, 'get_weather');
      assert.deepEqual(call.args, { city: 'Lisbon' });
      assert.match(call.id ?? '', /\S/);
      assert.equal(first.response_metadata.finish_reason, 'tool_calls');
      assert.deepEqual(first.invalid_tool_calls, []);

      // As an agent loop does: the AIMessage as received, then the tool's result.
      const result = new ToolMessage({ tool_call_id: call.id, content: '21C and sunny' });
      const second = await model.invoke([question, first, result]);
      assert.deepEqual(second.tool_calls, []);
      assert.match(textOf(second), /^result was .*21C and sunny/);
      assert.equal(second.response_metadata.finish_reason, 'stop');
      assert.equal(fake.requests.length, 2);
      const turns = p.turns(fake.requests[1]);
      assert.equal(turns.length, 3, JSON.stringify(turns));
      assert.deepEqual(turns.map(([role]) => role), ['user', 'assistant', p.name === 'openai pass-through' ? 'tool' : 'user']);
    });

    test('bindTools: a streamed tool call aggregates into tool_calls', async () => {
      const { chunks, whole } = await streamed(chat(p.model).bindTools([WEATHER_TOOL]), 'weather in Oslo');
      assert.ok(chunks.some((c) => c.tool_call_chunks?.length), 'tool call chunks arrive');
      assert.equal(whole.tool_calls.length, 1, JSON.stringify(whole.tool_calls));
      assert.equal(whole.tool_calls[0].name, 'get_weather');
      assert.deepEqual(whole.tool_calls[0].args, { city: 'Oslo' });
      assert.match(whole.tool_calls[0].id ?? '', /\S/);
      assert.equal(whole.response_metadata.finish_reason, 'tool_calls');
      assert.ok(whole.usage_metadata?.total_tokens > 0, 'usage metadata on a tool-call stream too');
    });

    test("an upstream 429 is LangChain's rate-limit error", async () => {
      const model = chat(p.model);
      for (const how of ['invoke', 'stream']) {
        const call = how === 'invoke' ? () => model.invoke('fail:429') : async () => collect(await model.stream('fail:429'));
        const e = await rejection(call(), how);
        assert.ok(e instanceof OpenAIClient.RateLimitError, `${how}: expected RateLimitError, got ${e?.constructor?.name}: ${e?.message}`);
        assert.equal(e.status, 429);
        assert.equal(e.lc_error_code, 'MODEL_RATE_LIMIT', `${how}: ${e.message}`);
        assert.match(e.message, /rate limit|quota/i);
        assert.ok(Number(e.headers.get('retry-after')) >= 1, 'a Retry-After to back off by');
        assert.equal(e.rateLimitType, p.rateLimit, `${how}: ${e.rateLimitReason}`);
        assert.equal(getRetryable(e), p.rateLimit === 'wait', 'LangChain retries a rate limit, not a spent quota');
        if (p.rateLimit === 'wait') assert.ok(e.retryAfterMs >= 1000, `LangChain read the Retry-After: ${e.retryAfterMs}`);
      }
    });
  });
}

// Gemini 3 refuses a function call sent back without the thought signature it
// came with. The proxy hands the signature to clients where Google's own
// OpenAI-compatible endpoint does (tool_calls[].extra_content.google), but
// LangChain rebuilds tool_calls from its parsed ToolCall objects and drops
// extra_content; the proxy then sends Google's documented sentinel signature,
// so the round trip still works.
test('bindTools round trip on gemini-3 (thought signatures)', async () => {
  const model = chat('gemini3').bindTools([WEATHER_TOOL]);
  const question = new HumanMessage('what is the weather in Lisbon');
  const first = await model.invoke([question]);
  assert.equal(first.tool_calls.length, 1);
  const second = await model.invoke([question, first,
    new ToolMessage({ tool_call_id: first.tool_calls[0].id, content: '21C' })]);
  assert.match(textOf(second), /^result was .*21C/);
});

describe('errors the proxy answers itself', () => {
  test('a wrong virtual key is LangChain’s authentication error', async () => {
    const e = await rejection(new ChatOpenAI({
      model: 'gpt', apiKey: 'sk-not-a-real-key', configuration: { baseURL: serve.baseURL }, maxRetries: 0,
    }).invoke('hi'));
    assert.ok(e instanceof OpenAIClient.AuthenticationError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.lc_error_code, 'MODEL_AUTHENTICATION');
    assert.equal(getRetryable(e), false);
  });

  test('an unknown model is LangChain’s model-not-found error', async () => {
    const e = await rejection(chat('no-such-model').invoke('hi'));
    assert.ok(e instanceof OpenAIClient.NotFoundError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.lc_error_code, 'MODEL_NOT_FOUND');
    assert.equal(e.code, 'model_not_found');
  });

  test("an upstream 400 reaches LangChain as OpenAI's BadRequestError", async () => {
    const e = await rejection(chat('gpt').invoke('trigger-400'));
    assert.ok(e instanceof OpenAIClient.BadRequestError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'upstream_no');
    assert.match(e.message, /upstream says no/);
  });
});

test('OpenAIEmbeddings through the proxy', async () => {
  const embeddings = new OpenAIEmbeddings({
    model: 'embed', apiKey: key, configuration: { baseURL: serve.baseURL }, maxRetries: 0,
  });
  const [a, b] = await embeddings.embedDocuments(['alpha', 'beta']);
  const query = await embeddings.embedQuery('alpha');
  assert.ok(a.length > 0 && a.every((x) => typeof x === 'number' && Number.isFinite(x)));
  assert.equal(b.length, a.length);
  assert.notDeepEqual(a, b);
  assert.equal(query.length, a.length);
  for (let i = 0; i < a.length; ++i) assert.ok(Math.abs(query[i] - a[i]) < 1e-6, `component ${i}`);
});

test('the proxy recorded usage for the LangChain calls', async () => {
  // Per chat alias: invoke, stream, 2 round-trip turns, streamed tool call (5
  // successes) and 2 refused with 429.
  const records = await waitFor(() => {
    const all = ws.cli('usage', '--limit', '0');
    return ['gpt', 'sonnet', 'flash'].every((m) => all.filter((r) => r.model === m).length >= 7) ? all : null;
  }, 5_000, 'the usage records');
  for (const model of ['gpt', 'sonnet', 'flash']) {
    const ok = records.filter((r) => r.model === model && r.status === 200);
    assert.ok(ok.length >= 5, `${model}: ${ok.length} successful records`);
    for (const r of ok) assert.ok(r.prompt_tokens > 0 && r.completion_tokens > 0, JSON.stringify(r));
    assert.equal(records.filter((r) => r.model === model && r.status === 429).length, 2, `${model}: the 429s`);
  }
  for (const secret of [OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY]) assert.ok(!JSON.stringify(records).includes(secret));
});
