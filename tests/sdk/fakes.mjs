// Fake upstreams the SDK suites put behind llm-proxy, each speaking its
// provider's own wire format and checking what it receives the way the
// provider does: an OpenAI-shaped server (for `openai` / `openai-compatible`
// connections), Anthropic's Messages API and Gemini's generateContent. Every
// fake records the requests it got in `requests`.
import { listen, readJson, sendJson, urlOf, words } from './harness.mjs';

export const OPENAI_KEY = 'sk-upstream-secret';
export const ANTHROPIC_KEY = 'sk-ant-upstream-secret-42';
export const GOOGLE_KEY = 'AIzaSy-upstream-secret-42';

// ---------------------------------------------------------------------------
// OpenAI: POST /v1/chat/completions. It echoes the last user message
// (prefixed with "up:"), streams one word per SSE event, and sends the
// usage-only chunk only when stream_options.include_usage is set, as OpenAI
// does. With tools and "weather" in the message it calls the first tool; a
// tool result is answered with "result was <content>". "trigger-400" and
// "fail:429" answer OpenAI's own errors.
// ---------------------------------------------------------------------------
function openaiError(res, status, error, headers = {}) {
  sendJson(res, status, { error: { param: null, code: null, ...error } }, headers);
}

// The text of a message's content (a string or text parts).
function openaiText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.filter((p) => p.type === 'text').map((p) => p.text).join(' ');
  return '';
}

// What OpenAI refuses about the messages; an error message or null.
function openaiInvalid(body) {
  if (!Array.isArray(body.messages) || !body.messages.length) return "Missing required parameter: 'messages'.";
  const calls = new Set();
  for (const [i, m] of body.messages.entries()) {
    if (!['system', 'developer', 'user', 'assistant', 'tool'].includes(m.role)) {
      return `Invalid value: '${m.role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.`;
    }
    for (const c of m.tool_calls ?? []) {
      if (typeof c.id !== 'string' || c.type !== 'function' || typeof c.function?.arguments !== 'string') {
        return `Invalid type for 'messages[${i}].tool_calls': expected function calls with string arguments.`;
      }
      calls.add(c.id);
    }
    if (m.role === 'tool' && !calls.has(m.tool_call_id)) {
      return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.";
    }
  }
  for (const t of body.tools ?? []) {
    if (t.type !== 'function' || typeof t.function?.name !== 'string') return "Missing required parameter: 'tools[0].function'.";
  }
  return null;
}

async function handleOpenAI(fake, req, res) {
  let body;
  try {
    body = await readJson(req);
  } catch {
    return openaiError(res, 400, { message: 'bad json', type: 'invalid_request_error' });
  }
  fake.requests.push({ url: req.url, headers: req.headers, body });
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    return openaiError(res, 404, { message: `no route ${req.url}`, type: 'invalid_request_error' });
  }
  if (req.headers.authorization !== `Bearer ${OPENAI_KEY}`) {
    return openaiError(res, 401, { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' });
  }
  const invalid = openaiInvalid(body);
  if (invalid) return openaiError(res, 400, { message: invalid, type: 'invalid_request_error', param: 'messages' });
  const last = body.messages.at(-1);
  const users = body.messages.filter((m) => m.role === 'user');
  const text = openaiText(users.at(-1)?.content);
  if (text === 'trigger-400') {
    return openaiError(res, 400, { message: 'upstream says no', type: 'invalid_request_error', param: 'messages', code: 'upstream_no' });
  }
  if (text === 'fail:429') {
    return openaiError(res, 429, {
      message: 'Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.',
      type: 'requests', code: 'rate_limit_exceeded',
    }, { 'retry-after': '20', 'x-ratelimit-remaining-requests': '0' });
  }
  let reply = null;
  let call = null;
  if (last.role === 'tool') {
    reply = `result was ${openaiText(last.content)}`;
  } else if (body.tools?.length && text.includes('weather')) {
    call = { id: 'call_up_1', type: 'function',
      function: { name: body.tools[0].function.name, arguments: JSON.stringify({ city: words(text).at(-1) }) } };
  } else {
    reply = `up: ${text}`;
  }
  const pieces = reply === null ? [] : words(reply);
  const prompt_tokens = words(text).length;
  const completion_tokens = call ? 5 : pieces.length;
  const usage = { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
  const id = 'chatcmpl-up-1';
  const created = Math.floor(Date.now() / 1000);
  const finish_reason = call ? 'tool_calls' : 'stop';
  if (!body.stream) {
    const message = { role: 'assistant', content: reply, refusal: null, ...(call ? { tool_calls: [call] } : {}) };
    return sendJson(res, 200, {
      id, object: 'chat.completion', created, model: body.model,
      choices: [{ index: 0, message, logprobs: null, finish_reason }],
      usage,
    });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const chunk = (delta, finish = null) => ({
    id, object: 'chat.completion.chunk', created, model: body.model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
  send(chunk({ role: 'assistant', content: call ? null : '' }));
  for (let i = 0; i < pieces.length; ++i) {
    send(chunk({ content: (i ? ' ' : '') + pieces[i] }));
    if (i === 0 && fake.hold) await fake.hold;
  }
  if (call) {
    const args = call.function.arguments;
    const cut = Math.floor(args.length / 2);
    send(chunk({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }));
    for (const part of [args.slice(0, cut), args.slice(cut)]) send(chunk({ tool_calls: [{ index: 0, function: { arguments: part } }] }));
  }
  send(chunk({}, finish_reason));
  if (body.stream_options?.include_usage) {
    send({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage });
  }
  res.end('data: [DONE]\n\n');
}

// A started fake: { server, url, requests, close() }; the OpenAI one also has
// `hold`: when set to a promise, a stream pauses after its first word until
// it resolves.
async function start(handler, extra = {}) {
  const fake = { server: null, url: '', requests: [], ...extra };
  fake.server = await listen((req, res) => handler(fake, req, res));
  fake.url = urlOf(fake.server);
  return fake;
}

export const startOpenAI = () => start(handleOpenAI, { hold: null });
export const startAnthropic = () => start(handleAnthropic);
export const startGoogle = () => start(handleGoogle);

// ---------------------------------------------------------------------------
// Anthropic: POST /v1/messages (https://docs.anthropic.com/en/api/messages),
// x-api-key + anthropic-version, the SSE event sequence of a streamed message,
// and {"type":"error","error":{...}} errors.
// ---------------------------------------------------------------------------
function anthropicError(res, status, type, message, headers = {}) {
  sendJson(res, status, { type: 'error', error: { type, message } }, { 'request-id': 'req_err_1', ...headers });
}

// The text of a user message's content (string or blocks).
export function anthropicText(content) {
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

async function handleAnthropic(fake, req, res) {
  const body = await readJson(req);
  fake.requests.push({ url: req.url, headers: req.headers, body });
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
export const SIGNATURE = 'c2lnbmF0dXJlLTAx';

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

export const partsText = (c) => c.parts.filter((p) => typeof p.text === 'string').map((p) => p.text).join(' ');

async function handleGoogle(fake, req, res) {
  const url = new URL(req.url, 'http://x');
  const body = await readJson(req);
  fake.requests.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body });
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
      if (c.role === 'model' && call && call.thoughtSignature !== SIGNATURE &&
          call.thoughtSignature !== 'skip_thought_signature_validator') {  // Google's documented sentinel
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
  const responseId = `g-${fake.requests.length}`;
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

