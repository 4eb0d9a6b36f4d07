"""End to end through the real binary: a `google` connection behind a test
upstream that speaks the Gemini API as Google documents it
(https://ai.google.dev/api/generate-content, https://ai.google.dev/api/embeddings):
POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse,
:embedContent and :batchEmbedContents, the API key in `x-goog-api-key` (or
`?key=`), requests checked field by field the way Google's JSON front end does
(unknown fields and wrong types are refused with 400 INVALID_ARGUMENT),
GenerateContentResponse / EmbedContentResponse / BatchEmbedContentsResponse
replies, `data: {...}\\r\\n\\r\\n` SSE chunks, and google.rpc error bodies."""

import base64
import hashlib
import json
import http.server
import os
import re
import struct
import sys
import threading
import unittest
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Serve, Workspace, wait_until  # noqa: E402

UPSTREAM_KEY = "AIzaSy-upstream-secret-0123456789abcdef"
WRONG_KEY = "AIzaSy-revoked-key-ffffffffffffffffffff"
THINKING_TOKENS = 5  # gemini-2.5-flash thinks by default and reports thoughtsTokenCount
# Remote models the fake serves; anything else is NOT_FOUND, as at Google.
KNOWN_MODELS = {"gemini-2.5-flash", "gemini-3-pro-preview"}
# Embedding models and the (default) size of their vectors; embedContent /
# batchEmbedContents only, as generateContent is only for the models above.
EMBED_MODELS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
MAX_BATCH = 100  # requests in one batchEmbedContents
IMAGE_TOKENS = 258  # what Gemini counts for a small image
SIGNATURE_PREFIX = "c2lnbmF0dXJl"  # base64 bytes, opaque to clients
SKIP_SIGNATURE = "skip_thought_signature_validator"


# ---------------------------------------------------------------------------
# The request schema: GenerateContentRequest and the messages it contains.
# Proto3 JSON accepts a field's lowerCamelCase or its original snake_case name.
# ---------------------------------------------------------------------------
STRUCT = "struct"  # google.protobuf.Struct / Value: any JSON object
ANY = "any"
SCHEMA = {
    "GenerateContentRequest": {
        "model": "string", "contents": ("list", "Content"), "tools": ("list", "Tool"),
        "toolConfig": "ToolConfig", "safetySettings": ("list", "SafetySetting"),
        "systemInstruction": "Content", "generationConfig": "GenerationConfig",
        "cachedContent": "string"},
    "Content": {"role": "string", "parts": ("list", "Part")},
    "Part": {
        "text": "string", "inlineData": "Blob", "fileData": "FileData",
        "functionCall": "FunctionCall", "functionResponse": "FunctionResponse",
        "executableCode": STRUCT, "codeExecutionResult": STRUCT, "thought": "bool",
        "thoughtSignature": "bytes", "videoMetadata": STRUCT, "partMetadata": STRUCT},
    "Blob": {"mimeType": "string", "data": "bytes"},
    "FileData": {"mimeType": "string", "fileUri": "string"},
    "FunctionCall": {"id": "string", "name": "string", "args": STRUCT},
    "FunctionResponse": {"id": "string", "name": "string", "response": STRUCT,
                         "willContinue": "bool", "scheduling": "string", "parts": ("list", ANY)},
    "Tool": {"functionDeclarations": ("list", "FunctionDeclaration"),
             "googleSearchRetrieval": STRUCT, "codeExecution": STRUCT, "googleSearch": STRUCT,
             "urlContext": STRUCT, "computerUse": STRUCT, "fileSearch": STRUCT,
             "googleMaps": STRUCT},
    "FunctionDeclaration": {"name": "string", "description": "string", "behavior": "string",
                            "parameters": "Schema", "parametersJsonSchema": ANY,
                            "response": "Schema", "responseJsonSchema": ANY},
    # The OpenAPI 3.0 subset Gemini's Schema message has: no additionalProperties,
    # const, $schema, oneOf, allOf, $ref, ... (those need parametersJsonSchema).
    "Schema": {"type": "type", "format": "string", "title": "string", "description": "string",
               "nullable": "bool", "enum": ("list", "string"), "maxItems": "int",
               "minItems": "int", "properties": ("map", "Schema"), "required": ("list", "string"),
               "minProperties": "int", "maxProperties": "int", "minLength": "int",
               "maxLength": "int", "pattern": "string", "example": ANY,
               "anyOf": ("list", "Schema"), "propertyOrdering": ("list", "string"),
               "default": ANY, "items": "Schema", "minimum": "number", "maximum": "number"},
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig", "retrievalConfig": STRUCT},
    "FunctionCallingConfig": {"mode": "mode", "allowedFunctionNames": ("list", "string")},
    "SafetySetting": {"category": "string", "threshold": "string"},
    "EmbedContentRequest": {"model": "string", "content": "Content", "taskType": "taskType",
                            "title": "string", "outputDimensionality": "int"},
    "BatchEmbedContentsRequest": {"model": "string",
                                  "requests": ("list", "EmbedContentRequest")},
    "GenerationConfig": {
        "stopSequences": ("list", "string"), "responseMimeType": "string",
        "responseSchema": "Schema", "responseJsonSchema": ANY, "responseModalities": ("list", "string"),
        "candidateCount": "int", "maxOutputTokens": "int", "temperature": "number",
        "topP": "number", "topK": "int", "seed": "int", "presencePenalty": "number",
        "frequencyPenalty": "number", "responseLogprobs": "bool", "logprobs": "int",
        "enableEnhancedCivicAnswers": "bool", "speechConfig": STRUCT, "thinkingConfig": STRUCT,
        "imageConfig": STRUCT, "mediaResolution": "string"},
}
PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
             "executableCode", "codeExecutionResult")
TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}
TASK_TYPES = {"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT",
              "SEMANTIC_SIMILARITY", "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING",
              "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"}


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class Invalid(Exception):
    """400 INVALID_ARGUMENT, with the message Google's front end writes."""


class Failed(Exception):
    """One of the ERRORS, asked for with a "fail:<code>" text."""

    def __init__(self, doc):
        super().__init__(doc["error"]["message"])
        self.doc = doc


def check(message, value, where, violations):
    """Validates `value` as `message`; returns it with field names in camelCase."""
    if not isinstance(value, dict):
        violations.append(f"Invalid value at '{where}', expected an object")
        return value
    out = {}
    for key, v in value.items():
        name = camel(key)
        kind = SCHEMA[message].get(name)
        at = f"{where}.{snake(name)}" if where else snake(name)
        if kind is None:
            violations.append(f"Invalid JSON payload received. Unknown name \"{key}\" at "
                              f"'{where}': Cannot find field.")
            continue
        out[name] = check_value(kind, v, at, violations)
    return out


def check_value(kind, v, at, violations):
    def bad(what):
        violations.append(f"Invalid value at '{at}' ({what}), {json.dumps(v)}")
        return v

    if isinstance(kind, tuple):
        shape, item = kind
        if shape == "list":
            if not isinstance(v, list):
                return bad("list")
            return [check_value(item, x, f"{at}[{i}]", violations) for i, x in enumerate(v)]
        if not isinstance(v, dict):  # map<string, item>
            return bad("map")
        return {k: check_value(item, x, f"{at}[{k}].value", violations) for k, x in v.items()}
    if kind in SCHEMA:
        return check(kind, v, at, violations)
    if kind == ANY:
        return v
    if kind == STRUCT:
        return v if isinstance(v, dict) else bad("google.protobuf.Struct")
    if kind == "string":
        return v if isinstance(v, str) else bad("TYPE_STRING")
    if kind == "bool":
        return v if isinstance(v, bool) else bad("TYPE_BOOL")
    if kind == "number":
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else bad("TYPE_FLOAT")
    if kind == "int":
        ok = (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, str) and v.lstrip("-").isdigit())
        return int(v) if ok else bad("TYPE_INT32")
    if kind == "bytes":
        # Proto3 JSON: standard or URL-safe base64, with or without padding.
        try:
            text = v.replace("-", "+").replace("_", "/")
            base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            return v
        except (TypeError, ValueError):
            return bad("TYPE_BYTES")
    if kind == "type":  # Gemini takes the Type enum in either case ("object", "OBJECT")
        return v if isinstance(v, str) and v.upper() in TYPES else bad("TYPE_ENUM")
    if kind == "mode":
        return v if isinstance(v, str) and v in MODES else bad("TYPE_ENUM")
    if kind == "taskType":
        return v if isinstance(v, str) and v in TASK_TYPES else bad("TYPE_ENUM")
    raise AssertionError(kind)


def semantic_checks(req, model):
    """What generateContent refuses after parsing."""
    contents = req.get("contents") or []
    if not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    for t in req.get("tools", []):
        for i, d in enumerate(t.get("functionDeclarations", [])):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}", d.get("name", "")):
                raise Invalid(f"* GenerateContentRequest.tools[0].function_declarations[{i}].name: "
                              "Invalid function name.")
            if "parameters" in d and "parametersJsonSchema" in d:
                raise Invalid("parameters and parameters_json_schema are mutually exclusive")
    for i, c in enumerate(contents):
        if c.get("role", "user") not in ("user", "model"):
            raise Invalid("Please use a valid role: user, model.")
        if not c.get("parts"):
            raise Invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must "
                          "not be empty.")
        for j, p in enumerate(c["parts"]):
            data = [k for k in PART_DATA if k in p]
            if len(data) != 1:
                raise Invalid(f"* GenerateContentRequest.contents[{i}].parts[{j}].data: "
                              "required oneof field 'data' must have one initialized field")
            if "functionCall" in p and c.get("role") != "model":
                raise Invalid("Function calls must come from the model role.")
        calls = [p for p in c["parts"] if "functionCall" in p]
        if calls:
            nxt = contents[i + 1]["parts"] if i + 1 < len(contents) else []
            responses = [p for p in nxt if "functionResponse" in p]
            if i + 1 < len(contents) and len(responses) != len(calls):
                raise Invalid("Please ensure that the number of function response parts is equal "
                              "to the number of function call parts of the function call turn.")
    # Gemini 3 validates thought signatures on the function calls of the current
    # turn (everything after the last user message that is not a function response).
    if model.startswith("gemini-3"):
        start = max((i for i, c in enumerate(contents) if c.get("role", "user") == "user" and
                     any("text" in p for p in c["parts"])), default=0)
        for i in range(start, len(contents)):
            c = contents[i]
            calls = [p for p in c["parts"] if "functionCall" in p]
            if c.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
                raise Invalid("Function call is missing a thought_signature in functionCall parts. "
                              "This is required for tools to work correctly, and missing "
                              "thought_signature may lead to degraded model performance. "
                              f"Additional data, function call `default_api:"
                              f"{calls[0]['functionCall']['name']}` , position {i + 1}. Please "
                              "refer to https://ai.google.dev/gemini-api/docs/thought-signatures "
                              "for more details.")
            for p in calls:
                sig = p.get("thoughtSignature")
                # Google documents this sentinel for calls whose signature is
                # not at hand (e.g. history rebuilt by a client framework).
                if sig and sig != SKIP_SIGNATURE and not sig.startswith(SIGNATURE_PREFIX):
                    raise Invalid("Corrupted thought signature.")


def google_error(code, status, message, details=None):
    err = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


ERRORS = {  # user text "fail:<code>" → the error Google answers with
    400: google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    404: google_error(404, "NOT_FOUND", "Requested entity was not found."),
    429: google_error(429, "RESOURCE_EXHAUSTED",
                      "You exceeded your current quota, please check your plan and billing "
                      "details.", [
                          {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                              {"quotaMetric": "generativelanguage.googleapis.com/"
                                              "generate_content_free_tier_requests",
                               "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                               "quotaDimensions": {"model": "gemini-2.5-flash",
                                                   "location": "global"},
                               "quotaValue": "10"}]},
                          {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                              {"description": "Learn more about Gemini API quotas",
                               "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                          {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": "17.25s"}]),
    500: google_error(500, "INTERNAL", "An internal error has occurred. Please retry or report "
                      "in https://developers.generativeai.google/guide/troubleshooting"),
    503: google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def words(text):
    return text.split()


def user_text(content):
    return " ".join(p["text"] for p in content["parts"] if "text" in p)


def prompt_tokens(req):
    """One token per word of text, IMAGE_TOKENS per image, plus function traffic."""
    n = 0
    for c in req["contents"] + ([req["systemInstruction"]] if "systemInstruction" in req else []):
        for p in c["parts"]:
            if "text" in p:
                n += len(words(p["text"]))
            elif "inlineData" in p or "fileData" in p:
                n += IMAGE_TOKENS
            else:
                n += 3
    return n


class FakeGemini:
    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        self._next = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.reply(404, google_error(404, "NOT_FOUND", "Method not found."))

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                record = {"path": url.path, "query": query,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "raw": raw, "body": None}
                with fake._lock:
                    fake.requests.append(record)
                m = re.fullmatch(r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent|"
                                 r"embedContent|batchEmbedContents)", url.path)
                if not m:
                    return self.reply(404, google_error(404, "NOT_FOUND", "Method not found."))
                model, method = m.groups()
                embedding = method in ("embedContent", "batchEmbedContents")
                key = self.headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
                if not key:
                    return self.reply(403, google_error(
                        403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers "
                        "(callers without established identity). Please use API Key or other "
                        "form of API consumer identity to call this API."))
                if key != UPSTREAM_KEY:
                    return self.reply(400, google_error(
                        400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                          "metadata": {"service": "generativelanguage.googleapis.com"}}]))
                if model not in (EMBED_MODELS if embedding else KNOWN_MODELS):
                    return self.reply(404, google_error(
                        404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, "
                        f"or is not supported for {method}. Call ListModels to see the list "
                        "of available models and their supported methods."))
                try:
                    doc = json.loads(raw)
                except ValueError:
                    return self.reply(400, google_error(
                        400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
                violations = []
                message = {"embedContent": "EmbedContentRequest",
                           "batchEmbedContents": "BatchEmbedContentsRequest"}.get(
                               method, "GenerateContentRequest")
                req = check(message, doc, "", violations)
                if violations:
                    return self.reply(400, google_error(
                        400, "INVALID_ARGUMENT", "\n".join(violations),
                        [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                          "fieldViolations": [{"description": v} for v in violations]}]))
                record["body"] = req
                if embedding:
                    try:
                        record["reply"] = fake.embed(model, method, req)
                    except Invalid as e:
                        return self.reply(400, google_error(400, "INVALID_ARGUMENT", str(e)))
                    except Failed as e:
                        return self.reply(e.doc["error"]["code"], e.doc)
                    return self.reply(200, record["reply"])
                try:
                    semantic_checks(req, model)
                except Invalid as e:
                    return self.reply(400, google_error(400, "INVALID_ARGUMENT", str(e)))
                last = req["contents"][-1]
                text = user_text(last)
                if text.startswith("fail:"):
                    err = ERRORS[int(text[5:])]
                    return self.reply(err["error"]["code"], err)
                if method == "streamGenerateContent":
                    if query.get("alt") != ["sse"]:  # without alt=sse: one JSON array
                        return self.reply(200, [fake.answer(model, req)])
                    return self.stream(fake.chunks(model, req))
                self.reply(200, fake.answer(model, req))

            def reply(self, status, doc):
                data = json.dumps(doc, indent=2).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, chunks):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in chunks:
                    event = ("data: " + json.dumps(chunk) + "\r\n\r\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def response_id(self):
        with self._lock:
            self._next += 1
            return f"resp-{self._next:04d}"

    def plan(self, model, req):
        """What the model "generates": (parts, finishReason), then usage."""
        last = req["contents"][-1]
        config = req.get("generationConfig", {})
        tools = [d for t in req.get("tools", []) for d in t.get("functionDeclarations", [])]
        mode = req.get("toolConfig", {}).get("functionCallingConfig", {}).get("mode", "AUTO")
        responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        text = user_text(last)
        signed = {"thoughtSignature": SIGNATURE_PREFIX + base64.b64encode(
            self.response_id().encode()).decode()}
        if responses:
            reply = "tool said " + json.dumps([r["response"] for r in responses], sort_keys=True)
            parts, reason = [{"text": reply}], "STOP"
        elif tools and mode != "NONE" and "weather" in text:
            city = words(text)[-1].strip("?")
            parts = [{"functionCall": {"name": tools[0]["name"], "args": {"city": city}}, **signed}]
            reason = "STOP"
        elif text == "finish:SAFETY":
            return [], "SAFETY"
        else:
            reply = words("echo: " + text)
            limit = config.get("maxOutputTokens")
            reason = "STOP"
            if limit is not None and len(reply) > limit:
                reply, reason = reply[:limit], "MAX_TOKENS"
            parts = [{"text": w + (" " if i + 1 < len(reply) else "")} for i, w in enumerate(reply)]
        return parts, reason

    def usage(self, model, req, parts, final=True):
        prompt = prompt_tokens(req)
        u = {"promptTokenCount": prompt, "totalTokenCount": prompt,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
        if final:
            out = sum(len(words(p["text"])) if "text" in p else 4 for p in parts)
            u["candidatesTokenCount"] = out
            u["totalTokenCount"] += out
            if model == "gemini-2.5-flash":
                u["thoughtsTokenCount"] = THINKING_TOKENS
                u["totalTokenCount"] += THINKING_TOKENS
        return u

    def answer(self, model, req):
        parts, reason = self.plan(model, req)
        cand = {"finishReason": reason, "index": 0}
        if parts:
            merged = [p for p in parts if "text" not in p]
            text = "".join(p["text"] for p in parts if "text" in p)
            if text:
                merged.insert(0, {"text": text})
            cand["content"] = {"parts": merged, "role": "model"}
        if reason == "SAFETY":
            cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                      "probability": "HIGH", "blocked": True}]
        return {"candidates": [cand], "usageMetadata": self.usage(model, req, parts),
                "modelVersion": model, "responseId": self.response_id()}

    def embed(self, model, method, req):
        """EmbedContentResponse / BatchEmbedContentsResponse, or raises Invalid or Failed."""
        batch = method == "batchEmbedContents"
        requests = req.get("requests", []) if batch else [req]
        if batch and not requests:
            raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(requests) > MAX_BATCH:
            raise Invalid(f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH} requests "
                          "can be in one batch")
        size = EMBED_MODELS[model]
        embeddings, tokens = [], 0
        for i, r in enumerate(requests):
            where = f"BatchEmbedContentsRequest.requests[{i}]" if batch else "EmbedContentRequest"
            named = r.get("model")
            if batch and not named:
                raise Invalid(f"* {where}.model: model is required")
            if named is not None and named != f"models/{model}":
                raise Invalid(f"* {where}.model: the model in the request ({named}) does not "
                              f"match the model in the URL (models/{model})")
            parts = r.get("content", {}).get("parts", [])
            if not parts:
                raise Invalid(f"* {where}.content: content is not specified")
            if any("text" not in p for p in parts):
                raise Invalid(f"* {where}.content: only text parts can be embedded by {model}")
            text = " ".join(p["text"] for p in parts)
            if not text.strip():
                raise Invalid(f"* {where}.content.parts[0].text: text must not be empty")
            dims = r.get("outputDimensionality", size)
            if not 1 <= dims <= size:
                raise Invalid(f"* {where}.output_dimensionality: must be between 1 and {size} "
                              f"for {model}")
            if text.startswith("fail:"):
                raise Failed(ERRORS[int(text[5:])])
            embeddings.append({"values": embedding_values(r.get("taskType", ""), text, dims)})
            tokens += len(words(text))
        usage = {"promptTokenCount": tokens,
                 "promptTokenDetails": [{"modality": "TEXT", "tokenCount": tokens}]}
        if batch:
            return {"embeddings": embeddings, "usageMetadata": usage}
        return {"embedding": embeddings[0], "usageMetadata": usage}

    def chunks(self, model, req):
        parts, reason = self.plan(model, req)
        rid = self.response_id()
        out = []
        for i, p in enumerate(parts or [None]):
            final = i + 1 == max(len(parts), 1)
            cand = {"index": 0}
            if p is not None:
                cand["content"] = {"parts": [p], "role": "model"}
            if final:
                cand["finishReason"] = reason
            out.append({"candidates": [cand],
                        "usageMetadata": self.usage(model, req, parts, final=final),
                        "modelVersion": model, "responseId": rid})
        return out


def embedding_values(task, text, size):
    """A deterministic vector for the text, as float32-representable decimals."""
    seed = hashlib.sha256(f"{task}|{text}".encode()).digest()
    values = []
    while len(values) < size:
        seed = hashlib.sha256(seed).digest()
        values += [round(b / 127.5 - 1.0, 6) for b in seed]
    return values[:size]


def chat(model, text, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False}}}

PNG_1PX = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")).decode()


class GoogleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.fake = FakeGemini()
        cls.addClassCleanup(cls.fake.stop)
        ws = cls.ws
        ws.connection("gem", "google", endpoint=cls.fake.base_url, api_key=UPSTREAM_KEY)
        ws.connection("gem-revoked", "google", endpoint=cls.fake.base_url, api_key=WRONG_KEY)
        ws.connection("gem-keyless", "google", endpoint=cls.fake.base_url)
        ws.model("flash", "gemini-2.5-flash", "gem", input_price=0.3, output_price=2.5)
        ws.model("gem3", "gemini-3-pro-preview", "gem")
        ws.model("ghost", "gemini-0-nope", "gem")
        ws.model("revoked", "gemini-2.5-flash", "gem-revoked")
        ws.model("keyless", "gemini-2.5-flash", "gem-keyless")
        ws.model("gembed", "gemini-embedding-001", "gem", input_price=0.15, output_price=0)
        ws.model("gembed4", "text-embedding-004", "gem")
        ws.model("gembed-ghost", "embedding-0-nope", "gem")
        cls.key, _ = ws.vkey("app", model_id=["flash", "gem3", "ghost", "revoked", "keyless",
                                              "gembed", "gembed4", "gembed-ghost"])
        cls.log_file = os.path.join(ws.dir, "access.log")
        cls.serve = Serve(ws, "--log-file", cls.log_file, "--log-bodies")
        cls.addClassCleanup(cls.serve.stop)

    def post(self, body, request_id=None):
        headers = {"x-request-id": request_id} if request_id else None
        return self.serve.post("/v1/chat/completions", body, key=self.key, headers=headers)

    def sent(self, since):
        """The requests the fake received after `since` of them."""
        return self.fake.requests[since:]

    def assertOpenAIError(self, r, status, type_, code):
        self.assertEqual(r.status, status, r.body)
        err = r.json()["error"]
        self.assertEqual((err["type"], err["code"]), (type_, code), err)
        self.assertEqual(set(err), {"message", "type", "param", "code"}, err)
        return err

    # ---- request translation and the non-streaming reply ----------------------

    def test_chat_request_and_reply_translated(self):
        before = len(self.fake.requests)
        r = self.post({
            "model": "flash", "temperature": 0.3, "top_p": 0.8, "max_tokens": 50,
            "stop": ["END", "STOP"],
            "messages": [{"role": "system", "content": "Be terse."},
                         {"role": "developer", "content": "No emojis."},
                         {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": "say something nice"}]}, "it-gem-1")
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        self.assertEqual(sent["path"], "/v1beta/models/gemini-2.5-flash:generateContent")
        self.assertEqual(sent["query"], {}, "the key never goes in the URL")
        self.assertEqual(sent["headers"].get("x-goog-api-key"), UPSTREAM_KEY)
        self.assertNotIn(self.key.encode(), sent["raw"])
        self.assertNotIn(self.key, json.dumps(sent["headers"]))
        self.assertEqual(sent["body"], {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]},
                         {"role": "model", "parts": [{"text": "hello"}]},
                         {"role": "user", "parts": [{"text": "say something nice"}]}],
            "systemInstruction": {"parts": [{"text": "Be terse."}, {"text": "No emojis."}]},
            "generationConfig": {"temperature": 0.3, "topP": 0.8, "maxOutputTokens": 50,
                                 "stopSequences": ["END", "STOP"]}})

        doc = r.json()
        self.assertEqual(doc["object"], "chat.completion")
        self.assertRegex(doc["id"], r"^chatcmpl-resp-\d{4}$")
        self.assertEqual(doc["model"], "gemini-2.5-flash")
        self.assertIsInstance(doc["created"], int)
        [choice] = doc["choices"]
        self.assertEqual(choice["index"], 0)
        self.assertEqual(choice["message"]["role"], "assistant")
        self.assertEqual(choice["message"]["content"], "echo: say something nice")
        self.assertNotIn("tool_calls", choice["message"])
        self.assertEqual(choice["finish_reason"], "stop")
        # prompt: 1 + 1 + 3 words + 2 + 2 (system); output 4 words + 5 thinking tokens
        self.assertEqual(doc["usage"], {"prompt_tokens": 9, "completion_tokens": 4 + THINKING_TOKENS,
                                        "total_tokens": 9 + 4 + THINKING_TOKENS})
        self.assertEqual(r.header("x-request-id"), "it-gem-1")
        rec = self.ws.wait_usage_record("it-gem-1")
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"], rec["status"]),
                         (9, 9, 200))
        self.assertEqual(rec["model"], "flash")
        self.assertAlmostEqual(rec["cost"], (9 * 0.3 + 9 * 2.5) / 1e6)

    def test_finish_reasons(self):
        r = self.post(chat("flash", "one two three four five", max_tokens=2))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.fake.requests[-1]["body"]["generationConfig"], {"maxOutputTokens": 2})
        choice = r.json()["choices"][0]
        self.assertEqual((choice["message"]["content"], choice["finish_reason"]),
                         ("echo: one", "length"))
        self.assertEqual(r.json()["usage"]["completion_tokens"], 2 + THINKING_TOKENS)

        r = self.post(chat("flash", "finish:SAFETY"))
        self.assertEqual(r.status, 200, r.body)
        choice = r.json()["choices"][0]
        self.assertEqual(choice["finish_reason"], "content_filter")
        self.assertEqual(choice["message"]["content"], "")

    def test_json_schema_response_format(self):
        # An OpenAI strict schema (additionalProperties: false) is JSON Schema,
        # which Gemini's responseSchema (an OpenAPI subset) would refuse.
        schema = {"type": "object", "properties": {"answer": {"type": "string"}},
                  "required": ["answer"], "additionalProperties": False}
        before = len(self.fake.requests)
        r = self.post(chat("flash", "json please", response_format={
            "type": "json_schema", "json_schema": {"name": "a", "strict": True, "schema": schema}}))
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        self.assertEqual(sent["body"]["generationConfig"], {
            "responseMimeType": "application/json", "responseJsonSchema": schema})

    def test_images_become_inline_and_file_data(self):
        before = len(self.fake.requests)
        r = self.post({"model": "flash", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what are these"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp",
                                                "detail": "low"}}]}]})
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        self.assertEqual(sent["body"]["contents"], [{"role": "user", "parts": [
            {"text": "what are these"},
            {"inlineData": {"mimeType": "image/png", "data": PNG_1PX}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}}]}])
        self.assertEqual(r.json()["usage"]["prompt_tokens"], 3 + 2 * IMAGE_TOKENS)

    def test_untranslatable_request_refused_before_sending(self):
        before = len(self.fake.requests)
        r = self.post({"model": "flash", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
        err = self.assertOpenAIError(r, 400, "invalid_request_error", "unsupported_parameter")
        self.assertEqual(err["param"], "messages[0].content[0]")
        self.assertEqual(len(self.fake.requests), before)

    # ---- tools --------------------------------------------------------------

    def test_tool_call_round_trip(self):
        # gemini-3 requires the thought signature of its function call back.
        before = len(self.fake.requests)
        messages = [{"role": "user", "content": "what is the weather in Paris?"}]
        r = self.post({"model": "gem3", "messages": messages, "tools": [WEATHER_TOOL],
                       "tool_choice": "auto"})
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        self.assertEqual(sent["path"], "/v1beta/models/gemini-3-pro-preview:generateContent")
        [decl] = sent["body"]["tools"][0]["functionDeclarations"]
        self.assertEqual((decl["name"], decl["description"]),
                         ("get_weather", "Current weather in a city"))
        schema = decl.get("parametersJsonSchema", decl.get("parameters"))
        self.assertEqual(schema["properties"], {"city": {"type": "string"}})
        self.assertEqual(schema["required"], ["city"])
        self.assertEqual(sent["body"]["toolConfig"], {"functionCallingConfig": {"mode": "AUTO"}})

        [choice] = r.json()["choices"]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertIsNone(choice["message"]["content"])
        [call] = choice["message"]["tool_calls"]
        self.assertEqual(call["type"], "function")
        self.assertEqual(call["function"]["name"], "get_weather")
        self.assertIsInstance(call["function"]["arguments"], str)
        self.assertEqual(json.loads(call["function"]["arguments"]), {"city": "Paris"})
        self.assertTrue(call["id"])
        # Gemini's thought signature rides along as Google's OpenAI endpoint sends it.
        self.assertTrue(call["extra_content"]["google"]["thought_signature"]
                        .startswith(SIGNATURE_PREFIX))

        # The client sends the assistant message back as it got it, with the result.
        messages += [choice["message"],
                     {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 18}'}]
        before = len(self.fake.requests)
        r = self.post({"model": "gem3", "messages": messages, "tools": [WEATHER_TOOL]})
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        contents = sent["body"]["contents"]
        self.assertEqual([c["role"] for c in contents], ["user", "model", "user"])
        [fc_part] = contents[1]["parts"]
        self.assertEqual(fc_part["functionCall"], {"name": "get_weather", "args": {"city": "Paris"}})
        self.assertTrue(fc_part.get("thoughtSignature", "").startswith(SIGNATURE_PREFIX),
                        "the thought signature Gemini gave the call comes back with it")
        [fr_part] = contents[2]["parts"]
        self.assertEqual(fr_part["functionResponse"]["name"], "get_weather")
        self.assertEqual(fr_part["functionResponse"]["response"], {"content": {"temp_c": 18}})
        [choice] = r.json()["choices"]
        self.assertEqual(choice["finish_reason"], "stop")
        self.assertEqual(choice["message"]["content"], 'tool said [{"content": {"temp_c": 18}}]')

    def test_unsigned_tool_calls_get_the_documented_sentinel_on_gemini_3(self):
        # A client that rebuilds the assistant message (LangChain does) drops
        # extra_content; Gemini 3 would refuse the call, so the proxy signs it
        # with Google's sentinel. Gemini 2.x calls are left unsigned.
        call = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
        messages = [{"role": "user", "content": "weather in Rome?"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "25C"}]
        for model, expected in (("gem3", SKIP_SIGNATURE), ("flash", None)):
            with self.subTest(model=model):
                before = len(self.fake.requests)
                r = self.post({"model": model, "messages": messages, "tools": [WEATHER_TOOL]})
                self.assertEqual(r.status, 200, r.body)
                [sent] = self.sent(before)
                [fc_part] = sent["body"]["contents"][1]["parts"]
                self.assertEqual(fc_part.get("thoughtSignature"), expected)

    def test_streamed_tool_call(self):
        s = self.serve.stream("/v1/chat/completions", {
            "model": "flash", "stream": True, "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "weather in Oslo"}]}, key=self.key)
        self.assertEqual(s.status, 200)
        data = s.read_all()
        s.close()
        self.assertEqual(data[-1], "[DONE]")
        chunks = [json.loads(d) for d in data[:-1]]
        calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
        self.assertEqual(len(calls), 1, chunks)
        self.assertEqual(calls[0]["index"], 0)
        self.assertEqual(calls[0]["function"]["name"], "get_weather")
        self.assertEqual(json.loads(calls[0]["function"]["arguments"]), {"city": "Oslo"})
        self.assertTrue(calls[0]["extra_content"]["google"]["thought_signature"]
                        .startswith(SIGNATURE_PREFIX))
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "tool_calls")

    # ---- streaming ------------------------------------------------------------

    def stream_chat(self, body, request_id):
        s = self.serve.stream("/v1/chat/completions", body, key=self.key,
                              headers={"x-request-id": request_id})
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
        data = s.read_all()
        s.close()
        self.assertIsNone(s.error)
        self.assertEqual(data[-1], "[DONE]", data)
        return [json.loads(d) for d in data[:-1]]

    def test_stream_with_usage(self):
        before = len(self.fake.requests)
        chunks = self.stream_chat(chat("flash", "count these four words", stream=True,
                                       stream_options={"include_usage": True}), "it-gem-s1")
        [sent] = self.sent(before)
        self.assertEqual(sent["path"], "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
        self.assertEqual(sent["query"], {"alt": ["sse"]})
        self.assertEqual(sent["headers"].get("x-goog-api-key"), UPSTREAM_KEY)
        self.assertNotIn("stream", json.loads(sent["raw"]))
        for c in chunks:
            self.assertEqual(c["object"], "chat.completion.chunk")
            self.assertEqual(c["id"], chunks[0]["id"])
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text, "echo: count these four words")
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        self.assertEqual(finishes[-1], "stop")
        self.assertEqual([f for f in finishes if f], ["stop"])
        usage_chunks = [c for c in chunks if c.get("usage")]
        self.assertEqual(len(usage_chunks), 1)
        self.assertIs(usage_chunks[0], chunks[-1])
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"], {"prompt_tokens": 4,
                                               "completion_tokens": 5 + THINKING_TOKENS,
                                               "total_tokens": 4 + 5 + THINKING_TOKENS})
        rec = self.ws.wait_usage_record("it-gem-s1")
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"], rec["status"]),
                         (4, 5 + THINKING_TOKENS, 200))

    def test_stream_without_usage_and_length(self):
        chunks = self.stream_chat(chat("gem3", "a b c d e f", stream=True, max_tokens=3),
                                  "it-gem-s2")
        self.assertFalse([c for c in chunks if c.get("usage")], "usage only when asked for")
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        self.assertEqual(text, "echo: a b")
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "length")
        rec = self.ws.wait_usage_record("it-gem-s2")  # recorded even though not shown
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"]), (6, 3))

    # ---- upstream errors ----------------------------------------------------------

    def test_upstream_errors_mapped_to_openai_shape(self):
        cases = [  # (model, user text, status, Google's status, its message, Retry-After)
            ("flash", "fail:400", 400, "INVALID_ARGUMENT", ERRORS[400], None),
            ("ghost", "hello", 404, "NOT_FOUND", "models/gemini-0-nope is not found", None),
            ("flash", "fail:429", 429, "RESOURCE_EXHAUSTED", ERRORS[429], "18"),  # 17.25s
            ("flash", "fail:500", 500, "INTERNAL", ERRORS[500], None),
            ("flash", "fail:503", 503, "UNAVAILABLE", ERRORS[503], "1"),
        ]
        for model, text, status, code, message, retry in cases:
            with self.subTest(code=code):
                if isinstance(message, dict):
                    message = message["error"]["message"]
                rid = f"it-gem-err-{status}"
                r = self.post(chat(model, text), rid)
                err = self.assertOpenAIError(r, status, code.lower(), code)
                self.assertIn("connection 'gem'", err["message"])
                self.assertIn(message, err["message"])
                self.assertEqual(r.header("retry-after"), retry)
                self.assertEqual(r.header("x-should-retry"), "true" if status == 503 else None)
                rec = self.ws.wait_usage_record(rid)
                self.assertEqual((rec["status"], rec["prompt_tokens"], rec["completion_tokens"]),
                                 (status, 0, 0))

    def test_stream_refused_upstream_is_a_plain_error(self):
        s = self.serve.stream("/v1/chat/completions", chat("flash", "fail:429", stream=True),
                              key=self.key)
        r = s.body_if_not_sse()
        s.close()
        err = self.assertOpenAIError(r, 429, "resource_exhausted", "RESOURCE_EXHAUSTED")
        self.assertIn("exceeded your current quota", err["message"])
        self.assertEqual(r.header("retry-after"), "18")

    def test_refused_connection_keys_are_not_the_clients_fault(self):
        # Google answers a missing key with 403 and a bad key with 400
        # INVALID_ARGUMENT/API_KEY_INVALID; neither is about the client's request.
        for model, rid in (("keyless", "it-gem-keyless"), ("revoked", "it-gem-revoked")):
            with self.subTest(model=model):
                before = len(self.fake.requests)
                r = self.post(chat(model, "hi"), rid)
                err = self.assertOpenAIError(r, 502, "upstream_auth_error", "upstream_auth_error")
                self.assertIn("connection 'gem-", err["message"])
                self.assertNotIn(WRONG_KEY, r.body.decode())
                [sent] = self.sent(before)
                self.assertEqual(sent["query"], {})
                if model == "keyless":
                    self.assertNotIn("x-goog-api-key", sent["headers"])
                else:
                    self.assertEqual(sent["headers"].get("x-goog-api-key"), WRONG_KEY)
                self.assertEqual(self.ws.wait_usage_record(rid)["status"], 502)

    # ---- embeddings ---------------------------------------------------------------

    def embed(self, body, request_id=None):
        headers = {"x-request-id": request_id} if request_id else None
        return self.serve.post("/v1/embeddings", body, key=self.key, headers=headers)

    def test_one_input_is_embed_content(self):
        for input_ in ("hello embedding world", ["hello embedding world"]):
            with self.subTest(input=input_):
                before = len(self.fake.requests)
                rid = f"it-gem-emb-one-{isinstance(input_, list)}"
                r = self.embed({"model": "gembed", "input": input_, "dimensions": 768,
                                "encoding_format": "float"}, rid)
                self.assertEqual(r.status, 200, r.body)
                [sent] = self.sent(before)
                self.assertEqual(sent["path"], "/v1beta/models/gemini-embedding-001:embedContent")
                self.assertEqual(sent["query"], {}, "the key never goes in the URL")
                self.assertEqual(sent["headers"].get("x-goog-api-key"), UPSTREAM_KEY)
                self.assertNotIn(self.key.encode(), sent["raw"])
                # EmbedContentRequest: the model is in the URL; dimensions → outputDimensionality.
                self.assertEqual(sent["body"], {
                    "content": {"parts": [{"text": "hello embedding world"}]},
                    "outputDimensionality": 768})
                doc = r.json()
                self.assertEqual(doc["object"], "list")
                self.assertEqual(doc["model"], "gemini-embedding-001")
                [item] = doc["data"]
                self.assertEqual((item["object"], item["index"]), ("embedding", 0))
                self.assertEqual(item["embedding"], sent["reply"]["embedding"]["values"])
                self.assertEqual(len(item["embedding"]), 768)
                # usageMetadata.promptTokenCount: one token per word in the fake
                self.assertEqual(doc["usage"], {"prompt_tokens": 3, "total_tokens": 3})
                rec = self.ws.wait_usage_record(rid)
                self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"], rec["status"]),
                                 (3, 0, 200))
                self.assertEqual(rec["model"], "gembed")
                self.assertAlmostEqual(rec["cost"], 3 * 0.15 / 1e6)

    def test_several_inputs_are_one_batch(self):
        texts = ["first document here", "second one", "third"]
        before = len(self.fake.requests)
        r = self.embed({"model": "gembed4", "input": texts}, "it-gem-emb-batch")
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        self.assertEqual(sent["path"], "/v1beta/models/text-embedding-004:batchEmbedContents")
        self.assertEqual(sent["body"], {"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
            for t in texts]})
        doc = r.json()
        self.assertEqual([d["index"] for d in doc["data"]], [0, 1, 2])
        self.assertEqual([d["embedding"] for d in doc["data"]],
                         [e["values"] for e in sent["reply"]["embeddings"]])
        self.assertEqual({len(d["embedding"]) for d in doc["data"]}, {768})  # the model's size
        self.assertEqual(doc["usage"], {"prompt_tokens": 6, "total_tokens": 6})
        rec = self.ws.wait_usage_record("it-gem-emb-batch")
        self.assertEqual((rec["prompt_tokens"], rec["status"]), (6, 200))

    def test_base64_embeddings_are_little_endian_float32(self):
        # What the OpenAI SDKs ask for when the caller does not choose.
        before = len(self.fake.requests)
        r = self.embed({"model": "gembed", "input": ["x y", "z"], "encoding_format": "base64",
                        "dimensions": 256}, "it-gem-emb-b64")
        self.assertEqual(r.status, 200, r.body)
        [sent] = self.sent(before)
        self.assertEqual([q["outputDimensionality"] for q in sent["body"]["requests"]], [256, 256])
        got = [d["embedding"] for d in r.json()["data"]]
        self.assertTrue(all(isinstance(g, str) for g in got))
        decoded = [list(struct.unpack(f"<{len(base64.b64decode(g)) // 4}f", base64.b64decode(g)))
                   for g in got]
        want = [list(struct.unpack("<256f", struct.pack("<256f", *e["values"])))
                for e in sent["reply"]["embeddings"]]
        self.assertEqual(decoded, want)

    def test_embedding_errors_mapped(self):
        cases = [  # (body, status, Google's status or our code, says, Retry-After)
            ({"model": "gembed", "input": "x", "dimensions": 5000}, 400, "INVALID_ARGUMENT",
             "output_dimensionality", None),
            ({"model": "gembed", "input": [f"t{i}" for i in range(101)]}, 400,
             "INVALID_ARGUMENT", "at most 100 requests", None),
            ({"model": "gembed", "input": ["ok", ""]}, 400, "INVALID_ARGUMENT",
             "text must not be empty", None),
            ({"model": "gembed", "input": "fail:429"}, 429, "RESOURCE_EXHAUSTED",
             "exceeded your current quota", "18"),
            ({"model": "gembed", "input": ["a", "fail:503"]}, 503, "UNAVAILABLE", "overloaded", "1"),
            ({"model": "gembed-ghost", "input": "x"}, 404, "NOT_FOUND",
             "models/embedding-0-nope is not found", None),
        ]
        for i, (body, status, code, says, retry) in enumerate(cases):
            with self.subTest(code=code, says=says):
                rid = f"it-gem-emb-err-{i}"
                r = self.embed(body, rid)
                err = self.assertOpenAIError(r, status, code.lower(), code)
                self.assertIn("connection 'gem'", err["message"])
                self.assertIn(says, err["message"])
                self.assertEqual(r.header("retry-after"), retry)
                rec = self.ws.wait_usage_record(rid)
                self.assertEqual((rec["status"], rec["prompt_tokens"]), (status, 0))

    def test_embedding_requests_refused_before_sending(self):
        before = len(self.fake.requests)
        cases = [({"model": "gembed", "input": [[1, 2, 3]]}, "input"),
                 ({"model": "gembed", "input": []}, "input"),
                 ({"model": "gembed", "input": "x", "encoding_format": "int8"}, "encoding_format"),
                 ({"model": "gembed", "input": "x", "dimensions": "256"}, "dimensions")]
        for body, param in cases:
            with self.subTest(body=body):
                r = self.embed(body)
                err = self.assertOpenAIError(r, 400, "invalid_request_error",
                                             "unsupported_parameter")
                self.assertEqual(err["param"], param)
        self.assertEqual(len(self.fake.requests), before, "nothing reached Google")

    def test_embedding_models_only_embed(self):
        # Gemini serves embedContent for embedding models only, and
        # generateContent for the others; the fake refuses the mix-up as Google does.
        r = self.post(chat("gembed", "hi"))
        err = self.assertOpenAIError(r, 404, "not_found", "NOT_FOUND")
        self.assertIn("not supported for generateContent", err["message"])
        r = self.embed({"model": "flash", "input": "hi"})
        err = self.assertOpenAIError(r, 404, "not_found", "NOT_FOUND")
        self.assertIn("not supported for embedContent", err["message"])

    # ---- limits and logs --------------------------------------------------------

    def test_token_limit_charged_with_translated_usage(self):
        # One request costs 2 prompt + (3 + 5 thinking) completion = 10 tokens,
        # known only from Gemini's usageMetadata; the window holds 11.
        key, _ = self.ws.vkey("tokens", model_id=["flash"], token_limit=11, token_window="day")
        ask = lambda: self.serve.post("/v1/chat/completions", chat("flash", "two words"), key=key)
        r = wait_until(lambda: (lambda x: x if x.status != 401 else None)(ask()), 5.0,
                       message="the new key to be loaded")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["usage"]["total_tokens"], 10)
        self.assertEqual(r.header("x-ratelimit-limit-tokens"), "11")
        # Its claim (estimate + completion reserve) took the whole window.
        self.assertEqual(r.header("x-ratelimit-remaining-tokens"), "0")
        r = ask()  # charged exactly 10: one token left, so still admitted (claiming it)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("x-ratelimit-remaining-tokens"), "0")
        before = len(self.fake.requests)
        r = ask()
        err = self.assertOpenAIError(r, 429, "tokens_exceeded", "tokens_exceeded")
        self.assertGreaterEqual(int(r.header("retry-after")), 1)
        self.assertEqual(r.header("x-ratelimit-remaining-tokens"), "0")
        self.assertEqual(len(self.fake.requests), before, "refused before reaching Google")

    def test_upstream_key_never_in_logs_or_records(self):
        self.assertEqual(self.post(chat("flash", "log me"), "it-gem-log1").status, 200)
        self.assertEqual(self.post(chat("revoked", "log me too"), "it-gem-log2").status, 502)
        s = self.serve.stream("/v1/chat/completions", chat("flash", "log stream", stream=True),
                              key=self.key, headers={"x-request-id": "it-gem-log3"})
        s.read_all()
        s.close()

        def logged():
            try:
                with open(self.log_file, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return text if all(f"it-gem-log{i}" in text for i in (1, 2, 3)) else None

        log = wait_until(logged, 5.0, message="the access log lines")
        self.assertIn("log me", log, "--log-bodies logs the prompt, so secrets would show")
        for secret in (UPSTREAM_KEY, WRONG_KEY, self.key):
            self.assertNotIn(secret, log)
            self.assertNotIn(secret, self.serve.stderr())
            self.assertNotIn(secret, json.dumps(self.ws.usage()))


if __name__ == "__main__":
    unittest.main()
