"""End to end through the real binary: `bedrock` connections behind a fake AWS
Bedrock Runtime that follows AWS's documented wire format — Converse
(POST /model/{modelId}/converse), ConverseStream (/converse-stream, replying
application/vnd.amazon.eventstream binary frames with both CRCs) and
InvokeModel (/invoke) for Titan and Cohere embeddings — and that verifies
every request's SigV4 signature itself (canonical request, string to sign,
signing key from the secret), answering 403 InvalidSignatureException like AWS
when it does not match. A signer bug therefore fails these tests."""

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import struct
import sys
import threading
import unittest
import urllib.parse
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Serve, Workspace  # noqa: E402

REGION = "eu-west-3"
SERVICE = "bedrock"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STS_ACCESS_KEY = "ASIAXAMPLESTSKEY0001"
STS_SECRET_KEY = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCWV1LXdlc3QtMyJHMEUCIQ+token=="
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE_EN = "cohere.embed-english-v3"
COHERE_MULTI = "cohere.embed-multilingual-v3"
# The `p` field AWS pads stream events with (so sizes do not leak content).
PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"

# Model ids that make the fake fail as Bedrock documents its errors
# (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html).
ERRORS = {
    "test.error-validation-v1:0": (400, "ValidationException",
                                   "The provided model identifier is invalid."),
    "test.error-denied-v1:0": (403, "AccessDeniedException",
                               "You don't have access to the model with the specified model ID."),
    "test.error-missing-v1:0": (404, "ResourceNotFoundException",
                                "Could not resolve the foundation model from the provided model "
                                "identifier."),
    "test.error-timeout-v1:0": (408, "ModelTimeoutException",
                                "Model has timed out in processing the request."),
    "test.error-throttle-v1:0": (429, "ThrottlingException",
                                 "Too many requests, please wait before trying again."),
    # HTTP 400 like a ValidationException: only x-amzn-ErrorType tells them apart.
    "test.error-quota-v1:0": (400, "ServiceQuotaExceededException",
                              "Your request exceeds the service quota for your account. You can "
                              "view your quotas at https://console.aws.amazon.com/servicequotas"),
    "test.error-internal-v1:0": (500, "InternalServerException",
                                 "The server encountered an internal error."),
    "test.error-unavailable-v1:0": (503, "ServiceUnavailableException",
                                    "Bedrock is unable to process your request."),
}
STREAM_CORRUPT = "test.stream-corrupt-v1:0"
STREAM_EXCEPTION = "test.stream-exception-v1:0"
CHAT_MODELS = {HAIKU, STREAM_CORRUPT, STREAM_EXCEPTION}
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. Consult the "
                      "service documentation for details.")


# ------------------------------------------------------------------ SigV4 ---
# Implemented from AWS's specification
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html),
# independently of the proxy's C++ signer.

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_uri(raw_path):
    # Every service but S3 encodes the (already encoded) path once more, so
    # the %3A of a model id is signed as %253A.
    return urllib.parse.quote(raw_path or "/", safe="/~")


def canonical_query(query):
    pairs = []
    for item in query.split("&") if query else []:
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((urllib.parse.quote(urllib.parse.unquote(name), safe="~"),
                      urllib.parse.quote(urllib.parse.unquote(value), safe="~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_value(values):
    return ",".join(" ".join(v.strip().split()) for v in values)


def signature(method, raw_path, query, headers, signed, payload_hash, secret, amz_date, region,
              service):
    """headers: lower-cased name → list of values; signed: the names to sign.
    Returns (canonical request, string to sign, signature hex)."""
    canonical_headers = "".join(f"{n}:{canonical_value(headers[n])}\n" for n in signed)
    creq = "\n".join([method, canonical_uri(raw_path), canonical_query(query), canonical_headers,
                      ";".join(signed), payload_hash])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret, amz_date[:8], region, service), sts.encode(),
                   hashlib.sha256).hexdigest()
    return creq, sts, sig


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request,"
                     r"\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")


class AuthFailure(Exception):
    def __init__(self, status, error_type, message):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def verify_sigv4(method, raw_target, headers, body, credentials, region, service, now=None):
    """Checks a request as AWS does; raises AuthFailure. `headers` maps
    lower-cased names to lists of values; `credentials` maps access key ids to
    (secret, session token or None). Returns the canonical request."""
    auth = headers.get("authorization", [None])[0]
    if not auth:
        raise AuthFailure(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.match(auth)
    if not m:
        raise AuthFailure(403, "IncompleteSignatureException",
                          "Authorization header requires 'Credential', 'SignedHeaders' and "
                          "'Signature' parameters.")
    key_id, scope_date, scope_region, scope_service, signed_list, given = m.groups()
    if key_id not in credentials:
        raise AuthFailure(403, "UnrecognizedClientException",
                          "The security token included in the request is invalid.")
    secret, token = credentials[key_id]
    amz_date = headers.get("x-amz-date", [""])[0]
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        raise AuthFailure(403, "IncompleteSignatureException", "Missing or malformed X-Amz-Date.")
    signed = signed_list.split(";")
    if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
        raise AuthFailure(403, "InvalidSignatureException",
                          "'Host' and 'X-Amz-Date' must be signed, names sorted.")
    for name in headers:
        if name.startswith("x-amz-") and name not in signed:
            raise AuthFailure(403, "InvalidSignatureException",
                              f"Header '{name}' must be signed.")
    missing = [n for n in signed if n not in headers]
    if missing:
        raise AuthFailure(403, "InvalidSignatureException", f"Signed header {missing[0]} is absent.")
    if scope_date != amz_date[:8]:
        raise AuthFailure(403, "InvalidSignatureException",
                          "Date in Credential scope does not match YYYYMMDD from X-Amz-Date.")
    if scope_region != region:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Credential should be scoped to a valid region. ")
    if scope_service != service:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Credential should be scoped to correct service: '{service}'. ")
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs((now - when).total_seconds()) > 300:
        raise AuthFailure(403, "InvalidSignatureException",
                          f"Signature expired: {amz_date} is now earlier than the allowed window.")
    sent_token = headers.get("x-amz-security-token", [None])[0]
    if (token or None) != sent_token:
        raise AuthFailure(403, "UnrecognizedClientException",
                          "The security token included in the request is invalid.")
    payload_hash = hashlib.sha256(body).hexdigest()
    if "x-amz-content-sha256" in headers and headers["x-amz-content-sha256"][0] != payload_hash:
        raise AuthFailure(400, "ValidationException",
                          "The provided 'x-amz-content-sha256' header does not match what was "
                          "computed.")
    path, _, query = raw_target.partition("?")
    creq, _, expected = signature(method, path, query, headers, signed, payload_hash, secret,
                                  amz_date, region, service)
    if not hmac.compare_digest(expected, given):
        raise AuthFailure(403, "InvalidSignatureException", SIGNATURE_MISMATCH)
    return creq


# ------------------------------------------------------------ event stream ---
# https://smithy.io/2.0/aws/amazon-eventstream.html: big-endian u32 total
# length, u32 headers length, CRC32 of those 8 bytes; headers (u8 name length,
# name, u8 type 7 = string, u16 length, value); payload; CRC32 of all before.

def es_message(headers, payload):
    hb = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        hb += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + payload
    return head + struct.pack(">I", zlib.crc32(head))


def es_event(event_type, doc):
    return es_message([(":event-type", event_type), (":content-type", "application/json"),
                       (":message-type", "event")], json.dumps(doc).encode())


def es_exception(exception_type, doc):
    return es_message([(":exception-type", exception_type), (":content-type", "application/json"),
                       (":message-type", "exception")], json.dumps(doc).encode())


# ---------------------------------------------------------- fake Bedrock ---

def words(text):
    return len(text.split())


def pieces(text):
    """The text as stream deltas that join back to it exactly."""
    return re.findall(r"\S+\s*", text) or [text]


class Invalid(Exception):
    pass


BLOCK_KEYS = {"text", "image", "document", "video", "toolUse", "toolResult", "guardContent",
              "reasoningContent", "cachePoint"}
CONVERSE_KEYS = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
                 "additionalModelRequestFields", "additionalModelResponseFieldPaths",
                 "promptVariables", "requestMetadata", "performanceConfig"}


def validate_converse(body):
    """Bedrock's ValidationException cases for a Converse request."""
    if not isinstance(body, dict):
        raise Invalid("Malformed input request, please reformat your input and try again.")
    for key in body:
        if key not in CONVERSE_KEYS:
            raise Invalid(f"Malformed input request: extraneous key [{key}] is not permitted, "
                          "please reformat your input and try again.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("A conversation must start with a user message. Try again with a "
                      "conversation that starts with a user message.")
    uses_tools = False
    previous_tool_uses = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant") or (i == 0 and role != "user"):
            raise Invalid("A conversation must start with a user message.")
        if i > 0 and role == messages[i - 1]["role"]:
            raise Invalid("A conversation must alternate between user and assistant roles. "
                          "Make sure the conversation alternates between user and assistant "
                          "roles and try again.")
        content = m.get("content")
        if not isinstance(content, list) or not content:
            raise Invalid(f"The content field in the Message object at messages.{i} is empty. "
                          "Add a ContentBlock object to the content field and try again.")
        tool_uses, tool_results = set(), set()
        for j, block in enumerate(content):
            if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCK_KEYS:
                raise Invalid(f"messages.{i}.content.{j} must hold exactly one content member.")
            kind, value = next(iter(block.items()))
            if kind == "text" and (not isinstance(value, str) or not value.strip()):
                raise Invalid(f"The text field in the ContentBlock object at messages.{i}."
                              f"content.{j} is blank. Add text to the text field, and try again.")
            if kind == "image":
                if value.get("format") not in ("png", "jpeg", "gif", "webp"):
                    raise Invalid(f"messages.{i}.content.{j}.image.format is invalid")
                try:
                    base64.b64decode(value["source"]["bytes"], validate=True)
                except (KeyError, TypeError, ValueError):
                    raise Invalid(f"messages.{i}.content.{j}.image.source.bytes is not base64")
            if kind == "toolUse":
                if role != "assistant" or set(value) != {"toolUseId", "name", "input"} or \
                        not isinstance(value["input"], dict):
                    raise Invalid(f"messages.{i}.content.{j}.toolUse is malformed")
                tool_uses.add(value["toolUseId"])
                uses_tools = True
            if kind == "toolResult":
                if role != "user" or not value.get("toolUseId") or \
                        not isinstance(value.get("content"), list):
                    raise Invalid(f"messages.{i}.content.{j}.toolResult is malformed")
                tool_results.add(value["toolUseId"])
                uses_tools = True
        if tool_results and tool_results != previous_tool_uses:
            raise Invalid(f"The toolResult blocks at messages.{i}.content do not match the "
                          "toolUse blocks of the previous turn.")
        previous_tool_uses = tool_uses
    if uses_tools and "toolConfig" not in body:
        raise Invalid("The toolConfig field must be defined when using toolUse and toolResult "
                      "content blocks.")
    for s in body.get("system", []):
        if set(s) != {"text"} or not s["text"].strip():
            raise Invalid("system blocks must be non-blank {text}")
    config = body.get("inferenceConfig", {})
    for key, value in config.items():
        if key not in ("maxTokens", "temperature", "topP", "stopSequences"):
            raise Invalid(f"extraneous key [{key}] is not permitted in inferenceConfig")
    if "maxTokens" in config and (not isinstance(config["maxTokens"], int) or
                                  config["maxTokens"] < 1):
        raise Invalid("inferenceConfig.maxTokens must be at least 1")
    for key in ("temperature", "topP"):
        if key in config and not 0 <= config[key] <= 1:
            raise Invalid(f"inferenceConfig.{key} must be between 0 and 1")
    if "stopSequences" in config and not all(isinstance(s, str) for s in config["stopSequences"]):
        raise Invalid("inferenceConfig.stopSequences must be strings")
    tc = body.get("toolConfig")
    if tc is not None:
        tools = tc.get("tools")
        if not isinstance(tools, list) or not tools:
            raise Invalid("toolConfig.tools must not be empty")
        for t in tools:
            spec = t.get("toolSpec", {})
            if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", spec.get("name", "")) or \
                    not isinstance(spec.get("inputSchema", {}).get("json"), dict):
                raise Invalid("toolConfig.tools[].toolSpec needs a name and inputSchema.json")
        choice = tc.get("toolChoice")
        if choice is not None and (len(choice) != 1 or
                                   next(iter(choice)) not in ("auto", "any", "tool")):
            raise Invalid("toolConfig.toolChoice must be one of auto, any, tool")


def converse_reply(body):
    """A deterministic stand-in for the model: (content blocks, stopReason, usage)."""
    system_text = " ".join(s["text"] for s in body.get("system", []))
    all_text = [system_text]
    for m in body["messages"]:
        for block in m["content"]:
            if "text" in block:
                all_text.append(block["text"])
            for r in block.get("toolResult", {}).get("content", []):
                all_text.append(r.get("text", ""))
    last = body["messages"][-1]["content"]
    user_text = " ".join(b["text"] for b in last if "text" in b)
    results = [r.get("text", "") for b in last for r in b.get("toolResult", {}).get("content", [])]
    tc = body.get("toolConfig")
    choice = (tc or {}).get("toolChoice", {"auto": {}})
    config = body.get("inferenceConfig", {})
    content, stop = [], "end_turn"
    if results:
        content = [{"text": "The tool said: " + ", ".join(results)}]
    elif tc and ("any" in choice or "tool" in choice or "weather" in user_text):
        name = choice["tool"]["name"] if "tool" in choice else tc["tools"][0]["toolSpec"]["name"]
        city = user_text.split()[-1].strip("?.!") if user_text.split() else "Paris"
        if "auto" in choice:
            content.append({"text": "Let me check."})
        content.append({"toolUse": {"toolUseId": "tooluse_" + hashlib.sha1(
            user_text.encode()).hexdigest()[:12], "name": name, "input": {"city": city}}})
        stop = "tool_use"
    elif "forbidden" in user_text:
        content, stop = [{"text": "I cannot help with that."}], "content_filtered"
    else:
        text = "echo: " + user_text
        for seq in config.get("stopSequences", []):
            if seq in text:
                text, stop = text[:text.index(seq)], "stop_sequence"
        limit = config.get("maxTokens")
        if limit is not None and words(text) > limit:
            text, stop = " ".join(text.split()[:limit]), "max_tokens"
        content = [{"text": text}]
    out_words = sum(words(b.get("text", "")) + len(json.dumps(b.get("toolUse", {}).get("input", "")))
                    // 8 for b in content)
    usage = {"inputTokens": sum(words(t) for t in all_text) + 7, "outputTokens": out_words + 1}
    usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
    return content, stop, usage


def stream_events(content, stop, usage):
    """ConverseStream's event sequence for a reply."""
    events = [es_event("messageStart", {"p": PAD[:9], "role": "assistant"})]
    for i, block in enumerate(content):
        if "toolUse" in block:
            use = block["toolUse"]
            events.append(es_event("contentBlockStart", {"contentBlockIndex": i, "p": PAD[:3], "start": {
                "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
            raw = json.dumps(use["input"])
            for k in range(0, len(raw), 5):
                events.append(es_event("contentBlockDelta", {"contentBlockIndex": i, "p": PAD[:k % 7],
                                                             "delta": {"toolUse": {"input": raw[k:k + 5]}}}))
        else:
            for piece in pieces(block["text"]):
                events.append(es_event("contentBlockDelta", {"contentBlockIndex": i, "p": PAD[:len(piece)],
                                                             "delta": {"text": piece}}))
        events.append(es_event("contentBlockStop", {"contentBlockIndex": i, "p": PAD[:5]}))
    events.append(es_event("messageStop", {"p": PAD[:11], "stopReason": stop}))
    events.append(es_event("metadata", {"metrics": {"latencyMs": 321}, "p": PAD[:2],
                                        "usage": usage}))
    return events


def embedding_vector(text, size, normalize):
    seed = hashlib.sha256(text.encode()).digest()
    values = []
    while len(values) < size:
        seed = hashlib.sha256(seed).digest()
        values += [round(b / 127.5 - 1.0, 6) for b in seed]
    values = values[:size]
    if normalize:
        norm = sum(v * v for v in values) ** 0.5
        values = [v / norm for v in values]
    return values


def invoke_input_tokens(model, body):
    """What AWS counts (and bills) for an InvokeModel embedding call, sent in the
    X-Amzn-Bedrock-Input-Token-Count reply header: the same number as Titan's
    inputTextTokenCount; Cohere's reply body has no count at all."""
    if model in (TITAN_V1, TITAN_V2):
        return words(body["inputText"]) + 1
    return sum(words(t) + 1 for t in body["texts"])


def invoke_reply(model, body):
    """InvokeModel for the embedding models, or raises Invalid."""
    if not isinstance(body, dict):
        raise Invalid("Malformed input request, please reformat your input and try again.")
    if model in (TITAN_V1, TITAN_V2):
        allowed = {"inputText"} if model == TITAN_V1 else {"inputText", "dimensions", "normalize",
                                                            "embeddingTypes"}
        for key in body:
            if key not in allowed:
                raise Invalid(f"Malformed input request: #: extraneous key [{key}] is not "
                              "permitted, please reformat your input and try again.")
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            raise Invalid("Malformed input request: #/inputText: expected minLength: 1, "
                          "please reformat your input and try again.")
        size = 1536 if model == TITAN_V1 else body.get("dimensions", 1024)
        if size not in (256, 512, 1024, 1536):
            raise Invalid("Malformed input request: #/dimensions: 300 is not a valid enum value")
        vector = embedding_vector(text, size, model == TITAN_V1 or body.get("normalize", True))
        reply = {"embedding": vector, "inputTextTokenCount": words(text) + 1}
        if model == TITAN_V2:
            reply["embeddingsByType"] = {"float": vector}
        return reply
    if model in (COHERE_EN, COHERE_MULTI):
        for key in body:
            if key not in ("texts", "input_type", "truncate", "embedding_types", "images"):
                raise Invalid(f"Malformed input request: #: extraneous key [{key}] is not "
                              "permitted, please reformat your input and try again.")
        texts = body.get("texts")
        if not isinstance(texts, list) or len(texts) > 96 or \
                not all(isinstance(t, str) for t in texts):
            raise Invalid("Malformed input request: #/texts: expected maxItems: 96")
        if body.get("input_type") not in ("search_document", "search_query", "classification",
                                          "clustering"):
            raise Invalid("Malformed input request: #/input_type: is not a valid enum value")
        return {"embeddings": [embedding_vector(body["input_type"] + ":" + t, 1024, False)
                               for t in texts],
                "id": str(uuid.uuid4()), "response_type": "embeddings_floats", "texts": texts}
    raise Invalid("The provided model identifier is invalid.")


class FakeBedrock:
    """bedrock-runtime.{REGION}.amazonaws.com, as far as these tests need it."""

    CREDENTIALS = {ACCESS_KEY: (SECRET_KEY, None), STS_ACCESS_KEY: (STS_SECRET_KEY, SESSION_TOKEN)}

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {}
                for name, value in self.headers.items():
                    headers.setdefault(name.lower(), []).append(value)
                rec = {"target": self.path, "headers": headers, "raw": raw, "auth_error": None}
                with fake.lock:
                    fake.requests.append(rec)
                try:
                    rec["canonical_request"] = verify_sigv4(
                        "POST", self.path, headers, raw, fake.CREDENTIALS, REGION, SERVICE)
                except AuthFailure as e:
                    rec["auth_error"] = e.error_type
                    return self.error(e.status, e.error_type, e.message)
                m = re.fullmatch(r"/model/([^/?]+)/(converse|converse-stream|invoke)", self.path)
                if not m:
                    return self.error(404, "UnknownOperationException", "")
                model, op = urllib.parse.unquote(m.group(1)), m.group(2)
                rec["model"], rec["op"] = model, op
                if self.headers.get("Content-Type") != "application/json":
                    return self.error(400, "ValidationException", "Content-Type must be JSON")
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.error(400, "ValidationException", "Malformed input request")
                rec["body"] = body
                if model in ERRORS:
                    return self.error(*ERRORS[model])
                try:
                    if op == "invoke":
                        rec["reply"] = invoke_reply(model, body)
                        rec["input_tokens"] = invoke_input_tokens(model, body)
                        return self.reply(200, rec["reply"], [
                            ("X-Amzn-Bedrock-Invocation-Latency", "27"),
                            ("X-Amzn-Bedrock-Input-Token-Count", str(rec["input_tokens"]))])
                    if model not in CHAT_MODELS:
                        raise Invalid("The provided model identifier is invalid.")
                    validate_converse(body)
                except Invalid as e:
                    return self.error(400, "ValidationException", str(e))
                content, stop, usage = converse_reply(body)
                rec["reply"] = {"output": {"message": {"role": "assistant", "content": content}},
                                "stopReason": stop, "usage": usage,
                                "metrics": {"latencyMs": 123}}
                if op == "converse":
                    return self.reply(200, rec["reply"])
                events = stream_events(content, stop, usage)
                if model == STREAM_CORRUPT:
                    # The third frame (second text delta) arrives with a payload byte flipped:
                    # its message CRC no longer matches.
                    bad = bytearray(events[2])
                    bad[-6] ^= 0x20
                    events[2] = bytes(bad)
                elif model == STREAM_EXCEPTION:
                    events = events[:2] + [es_exception("modelStreamErrorException", {
                        "message": "The model stopped responding mid-stream.",
                        "originalStatusCode": 500, "originalMessage": "worker lost"})]
                rec["events"] = events
                self.stream(b"".join(events))

            def reply(self, status, doc, extra=()):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def error(self, status, error_type, message):
                # restJson1: the type in x-amzn-ErrorType, {"message"} in the body.
                self.reply(status, {"message": message}, [(
                    "x-amzn-ErrorType",
                    error_type + ":http://internal.amazon.com/coral/com.amazon.bedrock/")])

            def stream(self, data):
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.end_headers()
                # Chunks of uneven sizes, so frames straddle chunk boundaries.
                sizes, at, k = (1, 7, 30, 64, 3, 200), 0, 0
                while at < len(data):
                    piece = data[at:at + sizes[k % len(sizes)]]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    at += len(piece)
                    k += 1
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last(self, model=None):
        with self.lock:
            for rec in reversed(self.requests):
                if model is None or rec.get("model") == model:
                    return rec
        return None

    def count(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ tests ---

def sse_events(stream):
    """All data payloads of a proxied stream: (parsed chunks, error events, saw [DONE])."""
    chunks, errors, done = [], [], False
    for _, data in stream.events():
        if data == "[DONE]":
            done = True
            continue
        doc = json.loads(data)
        (errors if "error" in doc else chunks).append(doc)
    return chunks, errors, done


def floats32(b64):
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def as_float32(values):
    return [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]


class SigV4VerifierTest(unittest.TestCase):
    """The fake's verifier itself, so that a pass through the proxy means something."""

    def test_reproduces_aws_test_suite_vectors(self):
        # aws-sig-v4-test-suite get-vanilla and post-x-www-form-urlencoded.
        headers = {"host": ["example.amazonaws.com"], "x-amz-date": ["20150830T123600Z"]}
        _, sts, sig = signature("GET", "/", "", headers, ["host", "x-amz-date"],
                                hashlib.sha256(b"").hexdigest(),
                                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830T123600Z",
                                "us-east-1", "service")
        self.assertEqual(sts.split("\n")[-1],
                         "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        self.assertEqual(sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        headers["content-type"] = ["application/x-www-form-urlencoded"]
        _, _, sig = signature("POST", "/", "", headers, ["content-type", "host", "x-amz-date"],
                              hashlib.sha256(b"Param1=value1").hexdigest(),
                              "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830T123600Z",
                              "us-east-1", "service")
        self.assertEqual(sig, "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
        # get-vanilla-query-order-key-case.
        _, _, sig = signature("GET", "/", "Param2=value2&Param1=value1",
                              {"host": ["example.amazonaws.com"],
                               "x-amz-date": ["20150830T123600Z"]},
                              ["host", "x-amz-date"], hashlib.sha256(b"").hexdigest(),
                              "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830T123600Z",
                              "us-east-1", "service")
        self.assertEqual(sig, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")

    def test_rejects_tampering(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        date = now.strftime("%Y%m%dT%H%M%SZ")
        path = "/model/" + urllib.parse.quote(HAIKU, safe="") + "/converse"
        body = b'{"messages":[]}'

        def signed(headers, body, secret=SECRET_KEY, path=path, sign=None):
            names = sorted(sign or headers)
            _, _, sig = signature("POST", path, "", headers, names,
                                  hashlib.sha256(body).hexdigest(), secret, date, REGION, SERVICE)
            out = dict(headers)
            out["authorization"] = [f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{date[:8]}/"
                                    f"{REGION}/{SERVICE}/aws4_request, SignedHeaders="
                                    f"{';'.join(names)}, Signature={sig}"]
            return out

        base = {"host": ["127.0.0.1:1"], "x-amz-date": [date], "content-type": ["application/json"]}
        creds = FakeBedrock.CREDENTIALS
        creq = verify_sigv4("POST", path, signed(base, body), body, creds, REGION, SERVICE)
        self.assertIn("/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n", creq)

        def failure(headers, body, target=path):
            with self.assertRaises(AuthFailure) as cm:
                verify_sigv4("POST", target, headers, body, creds, REGION, SERVICE)
            return cm.exception.error_type

        self.assertEqual(failure(signed(base, body), b'{"messages":[1]}'),
                         "InvalidSignatureException")
        self.assertEqual(failure(signed(base, body, secret="wrong"), body),
                         "InvalidSignatureException")
        self.assertEqual(failure(signed(base, body), body, path.replace("%3A", ":")),
                         "InvalidSignatureException")
        unsigned_amz = dict(base, **{"x-amz-user-agent": ["x"]})
        self.assertEqual(failure(signed(unsigned_amz, body, sign=base), body),
                         "InvalidSignatureException")
        stale = dict(base, **{"x-amz-date": ["20150830T123600Z"]})
        self.assertEqual(failure(signed(stale, body), body), "InvalidSignatureException")


class BedrockTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.fake = FakeBedrock()
        cls.addClassCleanup(cls.fake.stop)
        aws = dict(region=REGION, endpoint=cls.fake.base_url)
        cls.ws.connection("aws", "bedrock", access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                          **aws)
        cls.ws.connection("aws-sts", "bedrock", access_key_id=STS_ACCESS_KEY,
                          secret_access_key=STS_SECRET_KEY, session_token=SESSION_TOKEN,
                          header=["X-Amz-User-Agent: llm-proxy-it", "X-Team: research"], **aws)
        cls.ws.connection("aws-wrong", "bedrock", access_key_id=ACCESS_KEY,
                          secret_access_key=SECRET_KEY[:-1] + "X", **aws)
        models = {
            "haiku": (HAIKU, "aws"), "haiku-sts": (HAIKU, "aws-sts"),
            "haiku-wrong": (HAIKU, "aws-wrong"), "corrupt": (STREAM_CORRUPT, "aws"),
            "exploding": (STREAM_EXCEPTION, "aws"), "titan1": (TITAN_V1, "aws"),
            "titan2": (TITAN_V2, "aws"), "cohere": (COHERE_EN, "aws"),
            "cohere-sts": (COHERE_MULTI, "aws-sts"), "titan-wrong": (TITAN_V2, "aws-wrong"),
        }
        for remote in ERRORS:
            models[remote.split("-")[1]] = (remote, "aws")
        for alias, (remote, conn) in models.items():
            if alias == "haiku":
                cls.ws.model(alias, remote, conn, input_price=0.25, output_price=1.25)
            elif alias == "titan2":
                cls.ws.model(alias, remote, conn, input_price=0.02, output_price=0)
            else:
                cls.ws.model(alias, remote, conn)
        cls.key, _ = cls.ws.vkey("agent", model_id=list(models))
        cls.serve = Serve(cls.ws)
        cls.addClassCleanup(cls.serve.stop)

    def post(self, path, body, request_id):
        return self.serve.post(path, body, key=self.key, headers={"x-request-id": request_id})

    def stream(self, body, request_id):
        return self.serve.stream("/v1/chat/completions", body, key=self.key,
                                 headers={"x-request-id": request_id})

    def assert_signed_ok(self, rec, signed_extra=()):
        self.assertIsNone(rec["auth_error"], rec)
        auth = rec["headers"]["authorization"][0]
        names = re.search(r"SignedHeaders=([^,]+)", auth).group(1).split(";")
        for name in ("content-type", "host", "x-amz-date", *signed_extra):
            self.assertIn(name, names)
        self.assertNotIn(self.key, json.dumps(rec["headers"]) + rec["raw"].decode())

    # ---------------------------------------------------------------- chat ---

    def test_chat_completion(self):
        r = self.post("/v1/chat/completions", {
            "model": "haiku", "temperature": 0.3, "top_p": 0.9, "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be terse."},
                         {"role": "user", "content": "hi there"}]}, "it-br-chat")
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.last(HAIKU)
        self.assert_signed_ok(rec)
        self.assertEqual(rec["target"], "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
        self.assertEqual(rec["headers"]["accept"], ["application/json"])
        self.assertEqual(rec["body"], {
            "messages": [{"role": "user", "content": [{"text": "hi there"}]}],
            "system": [{"text": "Be terse."}],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.3, "topP": 0.9}})
        doc = r.json()
        self.assertEqual(doc["object"], "chat.completion")
        self.assertEqual(doc["model"], "haiku")
        self.assertTrue(doc["id"].startswith("chatcmpl-"))
        choice = doc["choices"][0]
        self.assertEqual(choice["message"]["role"], "assistant")
        self.assertEqual(choice["message"]["content"], "echo: hi there")
        self.assertEqual(choice["finish_reason"], "stop")
        u = rec["reply"]["usage"]
        self.assertEqual(doc["usage"], {"prompt_tokens": u["inputTokens"],
                                        "completion_tokens": u["outputTokens"],
                                        "total_tokens": u["totalTokens"]})
        usage = self.ws.wait_usage_record("it-br-chat")
        self.assertEqual((usage["prompt_tokens"], usage["completion_tokens"], usage["status"]),
                         (u["inputTokens"], u["outputTokens"], 200))
        self.assertAlmostEqual(usage["cost"],
                               (u["inputTokens"] * 0.25 + u["outputTokens"] * 1.25) / 1e6)

    def test_finish_reasons(self):
        cases = [
            ({"max_tokens": 2}, "one two three four", "length", "echo: one"),
            ({"stop": ["four"]}, "one two three four", "stop", "echo: one two three "),
            ({}, "something forbidden", "content_filter", "I cannot help with that."),
        ]
        for extra, text, finish, content in cases:
            with self.subTest(finish=finish):
                r = self.post("/v1/chat/completions", {
                    "model": "haiku", "messages": [{"role": "user", "content": text}], **extra},
                    "it-br-finish-" + finish)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json()["choices"][0]["finish_reason"], finish)
                self.assertEqual(r.json()["choices"][0]["message"]["content"], content)
        self.assertEqual(self.fake.last(HAIKU)["body"]["messages"][0]["content"][0]["text"],
                         "something forbidden")

    def test_tool_calls_round_trip(self):
        tools = [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}}]
        r = self.post("/v1/chat/completions", {
            "model": "haiku", "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}, "it-br-tools-1")
        self.assertEqual(r.status, 200, r.body)
        sent = self.fake.last(HAIKU)["body"]
        self.assertEqual(sent["toolConfig"], {
            "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather",
                                    "inputSchema": {"json": tools[0]["function"]["parameters"]}}}],
            "toolChoice": {"any": {}}})
        choice = r.json()["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertIsNone(choice["message"]["content"])
        call = choice["message"]["tool_calls"][0]
        self.assertEqual(call["type"], "function")
        self.assertEqual(call["function"]["name"], "get_weather")
        self.assertEqual(json.loads(call["function"]["arguments"]), {"city": "Oslo"})
        self.assertTrue(call["id"].startswith("tooluse_"))

        # The result goes back as toolUse / toolResult blocks Bedrock accepts.
        r2 = self.post("/v1/chat/completions", {
            "model": "haiku", "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Oslo?"},
                         {"role": "assistant", "content": None, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": call["id"], "content": "7C, rain"}]},
            "it-br-tools-2")
        self.assertEqual(r2.status, 200, r2.body)
        sent = self.fake.last(HAIKU)["body"]
        self.assertEqual(sent["messages"][1], {"role": "assistant", "content": [{"toolUse": {
            "toolUseId": call["id"], "name": "get_weather", "input": {"city": "Oslo"}}}]})
        self.assertEqual(sent["messages"][2], {"role": "user", "content": [{"toolResult": {
            "toolUseId": call["id"], "content": [{"text": "7C, rain"}]}}]})
        self.assertEqual(r2.json()["choices"][0]["message"]["content"], "The tool said: 7C, rain")
        self.assertEqual(r2.json()["choices"][0]["finish_reason"], "stop")

    def test_image_part_sent_as_bytes(self):
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
        data_url = "data:image/png;base64," + base64.b64encode(png).decode()
        r = self.post("/v1/chat/completions", {"model": "haiku", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": data_url}}]}]}, "it-br-image")
        self.assertEqual(r.status, 200, r.body)
        block = self.fake.last(HAIKU)["body"]["messages"][0]["content"][1]
        self.assertEqual(block["image"]["format"], "png")
        self.assertEqual(base64.b64decode(block["image"]["source"]["bytes"]), png)

    def test_untranslatable_request_refused_before_sending(self):
        before = self.fake.count()
        r = self.post("/v1/chat/completions", {
            "model": "haiku", "n": 2, "messages": [{"role": "user", "content": "x"}]}, "it-br-n")
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(r.json()["error"]["type"], "invalid_request_error")
        self.assertEqual(r.json()["error"]["param"], "n")
        self.assertEqual(self.fake.count(), before)
        self.assertEqual(self.ws.wait_usage_record("it-br-n")["status"], 400)

    # ----------------------------------------------------------- streaming ---

    def test_stream_decoded_into_chunks(self):
        s = self.stream({"model": "haiku", "stream": True,
                         "stream_options": {"include_usage": True},
                         "messages": [{"role": "user", "content": "count one two three"}]},
                        "it-br-stream")
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
        chunks, errors, done = sse_events(s)
        s.close()
        self.assertEqual(errors, [])
        self.assertTrue(done)
        self.assertEqual(s.received[-1][1], "[DONE]")
        rec = self.fake.last(HAIKU)
        self.assert_signed_ok(rec)
        self.assertEqual(rec["target"],
                         "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
        self.assertEqual(rec["headers"]["accept"], ["application/vnd.amazon.eventstream"])
        self.assertEqual(rec["body"], {"messages": [
            {"role": "user", "content": [{"text": "count one two three"}]}]})
        self.assertEqual({c["object"] for c in chunks}, {"chat.completion.chunk"})
        self.assertEqual(len({c["id"] for c in chunks}), 1)
        self.assertEqual({c["model"] for c in chunks}, {"haiku"})
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text, "echo: count one two three")
        finishes = [c["choices"][0]["finish_reason"] for c in chunks
                    if c["choices"] and c["choices"][0]["finish_reason"]]
        self.assertEqual(finishes, ["stop"])
        u = rec["reply"]["usage"]
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"], {"prompt_tokens": u["inputTokens"],
                                               "completion_tokens": u["outputTokens"],
                                               "total_tokens": u["totalTokens"]})
        usage = self.ws.wait_usage_record("it-br-stream")
        self.assertEqual((usage["prompt_tokens"], usage["completion_tokens"], usage["status"]),
                         (u["inputTokens"], u["outputTokens"], 200))

    def test_stream_without_usage_chunk_still_records_usage(self):
        s = self.stream({"model": "haiku", "stream": True, "max_tokens": 3,
                         "messages": [{"role": "user", "content": "a b c d e"}]},
                        "it-br-stream-nousage")
        chunks, errors, done = sse_events(s)
        s.close()
        self.assertTrue(done)
        self.assertEqual(errors, [])
        self.assertFalse(any("usage" in c for c in chunks))
        self.assertEqual([c["choices"][0]["finish_reason"] for c in chunks
                          if c["choices"][0]["finish_reason"]], ["length"])
        u = self.fake.last(HAIKU)["reply"]["usage"]
        usage = self.ws.wait_usage_record("it-br-stream-nousage")
        self.assertEqual((usage["prompt_tokens"], usage["completion_tokens"], usage["status"]),
                         (u["inputTokens"], u["outputTokens"], 200))

    def test_stream_tool_call(self):
        s = self.stream({"model": "haiku", "stream": True, "messages": [
            {"role": "user", "content": "what is the weather in Reykjavik"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}}}}}]},
            "it-br-stream-tools")
        chunks, errors, done = sse_events(s)
        s.close()
        self.assertTrue(done)
        self.assertEqual(errors, [])
        self.assertNotIn("toolChoice", self.fake.last(HAIKU)["body"]["toolConfig"])
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        self.assertEqual(text, "Let me check.")
        calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
        self.assertGreater(len(calls), 2)  # the arguments arrive in pieces
        self.assertEqual({tc["index"] for tc in calls}, {0})
        self.assertEqual(calls[0]["function"]["name"], "get_weather")
        self.assertTrue(calls[0]["id"].startswith("tooluse_"))
        args = "".join(tc["function"].get("arguments", "") for tc in calls)
        self.assertEqual(json.loads(args), {"city": "Reykjavik"})
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "tool_calls")

    def test_stream_crc_corruption_breaks_the_stream(self):
        s = self.stream({"model": "corrupt", "stream": True,
                         "messages": [{"role": "user", "content": "alpha beta gamma"}]},
                        "it-br-corrupt")
        self.assertEqual(s.status, 200)
        chunks, errors, done = sse_events(s)
        s.close()
        self.assertFalse(done)
        # Only what preceded the corrupt frame reached the client: the role
        # chunk and the first delta ("echo: "); nothing after it.
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        self.assertEqual(text, "echo: ")
        self.assertFalse(any(c["choices"][0]["finish_reason"] for c in chunks))
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual(errors[-1]["error"]["type"], "upstream_error")
        self.assertEqual(errors[-1]["error"]["code"], "upstream_stream_broken")
        self.assertIn("'aws'", errors[-1]["error"]["message"])
        self.assertIn("corrupt", errors[-1]["error"]["message"])  # the reason, not "ended early"
        self.assertIn("error", json.loads(s.received[-1][1]))  # the error is the last event
        self.assertEqual(self.ws.wait_usage_record("it-br-corrupt")["status"], 502)

    def test_stream_exception_event(self):
        s = self.stream({"model": "exploding", "stream": True,
                         "messages": [{"role": "user", "content": "go on"}]}, "it-br-exception")
        chunks, errors, done = sse_events(s)
        s.close()
        self.assertFalse(done)
        # What came before the exception was delivered.
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertEqual("".join(c["choices"][0]["delta"].get("content") or "" for c in chunks),
                         "echo: ")
        self.assertEqual(len(errors), 1, errors)  # the provider's own error, no second one
        self.assertEqual(errors[0]["error"]["type"], "modelStreamErrorException")
        self.assertEqual(errors[0]["error"]["message"], "The model stopped responding mid-stream.")
        self.assertIn("error", json.loads(s.received[-1][1]))
        self.assertEqual(self.ws.wait_usage_record("it-br-exception")["status"], 502)

    # -------------------------------------------------------------- errors ---

    def test_upstream_errors_keep_their_status(self):
        expected = {  # alias: (client status, error type, Retry-After)
            "validation": (400, "ValidationException", None),
            "missing": (404, "ResourceNotFoundException", None),
            "timeout": (504, "ModelTimeoutException", None),
            "throttle": (429, "ThrottlingException", "1"),
            "quota": (429, "ServiceQuotaExceededException", "1"),  # AWS sends it as HTTP 400
            "internal": (500, "InternalServerException", None),
            "unavailable": (503, "ServiceUnavailableException", "1"),
        }
        for alias, (status, error_type, retry_after) in expected.items():
            remote = next(m for m in ERRORS if m.split("-")[1] == alias)
            for stream in (False, True):
                with self.subTest(alias=alias, stream=stream):
                    rid = f"it-br-err-{alias}-{stream}"
                    body = {"model": alias, "stream": stream,
                            "messages": [{"role": "user", "content": "x"}]}
                    if stream:
                        s = self.stream(body, rid)
                        r = s.body_if_not_sse()
                        s.close()
                    else:
                        r = self.post("/v1/chat/completions", body, rid)
                    self.assertEqual(r.status, status, r.body)
                    self.assertTrue(r.header("content-type").startswith("application/json"))
                    err = r.json()["error"]
                    self.assertEqual((err["type"], err["code"]), (error_type, error_type))
                    self.assertIn(ERRORS[remote][2], err["message"])
                    self.assertIn("'aws'", err["message"])
                    self.assertEqual(r.header("retry-after"), retry_after)
                    self.assertEqual(self.fake.last(remote)["op"],
                                     "converse-stream" if stream else "converse")
                    self.assertEqual(self.ws.wait_usage_record(rid)["status"], status)

    def test_access_denied_is_the_connections_problem(self):
        r = self.post("/v1/chat/completions", {
            "model": "denied", "messages": [{"role": "user", "content": "x"}]}, "it-br-denied")
        self.assertEqual(r.status, 502, r.body)
        self.assertEqual(r.json()["error"]["code"], "upstream_auth_error")
        self.assertIsNone(self.fake.last("test.error-denied-v1:0")["auth_error"])
        self.assertEqual(self.ws.wait_usage_record("it-br-denied")["status"], 502)

    def test_wrong_secret_is_upstream_auth_error(self):
        cases = [("/v1/chat/completions", {"model": "haiku-wrong",
                                           "messages": [{"role": "user", "content": "x"}]}),
                 ("/v1/chat/completions", {"model": "haiku-wrong", "stream": True,
                                           "messages": [{"role": "user", "content": "x"}]}),
                 ("/v1/embeddings", {"model": "titan-wrong", "input": "x"})]
        for i, (path, body) in enumerate(cases):
            with self.subTest(body=body):
                before = self.fake.count()
                r = self.post(path, body, f"it-br-wrong-{i}")
                self.assertEqual(r.status, 502, r.body)
                err = r.json()["error"]
                self.assertEqual((err["type"], err["code"]),
                                 ("upstream_auth_error", "upstream_auth_error"))
                self.assertIn("'aws-wrong'", err["message"])
                self.assertEqual(self.fake.count(), before + 1)
                self.assertEqual(self.fake.last()["auth_error"], "InvalidSignatureException")
                self.assertEqual(self.ws.wait_usage_record(f"it-br-wrong-{i}")["status"], 502)

    def test_session_token_and_extra_headers_are_signed(self):
        r = self.post("/v1/chat/completions", {
            "model": "haiku-sts", "messages": [{"role": "user", "content": "temporary creds"}]},
            "it-br-sts")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "echo: temporary creds")
        rec = self.fake.last(HAIKU)
        self.assert_signed_ok(rec, ("x-amz-security-token", "x-amz-user-agent"))
        self.assertEqual(rec["headers"]["x-amz-security-token"], [SESSION_TOKEN])
        self.assertEqual(rec["headers"]["x-team"], ["research"])  # sent, not signed
        self.assertIn(f"Credential={STS_ACCESS_KEY}/", rec["headers"]["authorization"][0])
        s = self.stream({"model": "haiku-sts", "stream": True,
                         "messages": [{"role": "user", "content": "streamed too"}]},
                        "it-br-sts-stream")
        _, errors, done = sse_events(s)
        s.close()
        self.assertTrue(done)
        self.assertEqual(errors, [])
        self.assert_signed_ok(self.fake.last(HAIKU), ("x-amz-security-token",))

    # ---------------------------------------------------------- embeddings ---

    def test_titan_v2_embeddings(self):
        r = self.post("/v1/embeddings", {"model": "titan2", "input": "Hello Bedrock world",
                                         "dimensions": 256}, "it-br-titan2")
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.last(TITAN_V2)
        self.assert_signed_ok(rec)
        self.assertEqual(rec["target"], "/model/amazon.titan-embed-text-v2%3A0/invoke")
        self.assertEqual(rec["body"], {"inputText": "Hello Bedrock world", "dimensions": 256,
                                       "normalize": True})
        reply = rec["reply"]
        doc = r.json()
        self.assertEqual(doc["object"], "list")
        self.assertEqual(doc["model"], "titan2")
        self.assertEqual(len(doc["data"]), 1)
        self.assertEqual(doc["data"][0]["object"], "embedding")
        self.assertEqual(doc["data"][0]["index"], 0)
        self.assertEqual(doc["data"][0]["embedding"], reply["embedding"])
        self.assertEqual(len(doc["data"][0]["embedding"]), 256)
        n = reply["inputTextTokenCount"]
        self.assertEqual(rec["input_tokens"], n)  # the header AWS sends says the same
        self.assertEqual(doc["usage"], {"prompt_tokens": n, "total_tokens": n})
        usage = self.ws.wait_usage_record("it-br-titan2")
        self.assertEqual((usage["prompt_tokens"], usage["completion_tokens"], usage["status"]),
                         (n, 0, 200))
        self.assertAlmostEqual(usage["cost"], n * 0.02 / 1e6)

    def test_titan_v1_base64_embeddings(self):
        # The OpenAI SDKs ask for base64 by default.
        r = self.post("/v1/embeddings", {"model": "titan1", "input": ["just one"],
                                         "encoding_format": "base64"}, "it-br-titan1")
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.last(TITAN_V1)
        self.assertEqual(rec["body"], {"inputText": "just one"})
        got = floats32(r.json()["data"][0]["embedding"])
        self.assertEqual(len(got), 1536)
        self.assertEqual(got, as_float32(rec["reply"]["embedding"]))
        self.assertEqual(self.ws.wait_usage_record("it-br-titan1")["prompt_tokens"],
                         rec["reply"]["inputTextTokenCount"])

    def test_cohere_batch_embeddings(self):
        texts = ["first document", "second one", "third"]
        r = self.post("/v1/embeddings", {"model": "cohere", "input": texts}, "it-br-cohere")
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.last(COHERE_EN)
        self.assert_signed_ok(rec)
        self.assertEqual(rec["target"], "/model/cohere.embed-english-v3/invoke")
        self.assertEqual(rec["body"], {"texts": texts, "input_type": "search_document"})
        doc = r.json()
        self.assertEqual([d["index"] for d in doc["data"]], [0, 1, 2])
        self.assertEqual([d["embedding"] for d in doc["data"]], rec["reply"]["embeddings"])
        # Cohere's reply body has no token count: it comes from the
        # X-Amzn-Bedrock-Input-Token-Count header (3 + 3 + 2 = 8).
        self.assertNotIn("meta", rec["reply"])
        self.assertEqual(rec["input_tokens"], 8)
        self.assertEqual(doc["usage"], {"prompt_tokens": 8, "total_tokens": 8})
        usage = self.ws.wait_usage_record("it-br-cohere")
        self.assertEqual((usage["prompt_tokens"], usage["completion_tokens"], usage["status"]),
                         (8, 0, 200))

        # Base64, a client-chosen input_type, and a session-token connection.
        r = self.post("/v1/embeddings", {"model": "cohere-sts", "input": ["q1", "q2"],
                                         "input_type": "search_query",
                                         "encoding_format": "base64"}, "it-br-cohere-sts")
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.last(COHERE_MULTI)
        self.assert_signed_ok(rec, ("x-amz-security-token",))
        self.assertEqual(rec["body"]["input_type"], "search_query")
        self.assertEqual([floats32(d["embedding"]) for d in r.json()["data"]],
                         [as_float32(v) for v in rec["reply"]["embeddings"]])
        self.assertEqual(self.ws.wait_usage_record("it-br-cohere-sts")["prompt_tokens"],
                         rec["input_tokens"])

    def test_embedding_requests_bedrock_cannot_take(self):
        before = self.fake.count()
        cases = [
            ({"model": "titan2", "input": ["one", "two"]}, "input", "one text per request"),
            ({"model": "titan1", "input": "x", "dimensions": 256}, "dimensions", "fixed size"),
            ({"model": "cohere", "input": [[1, 2, 3]]}, "input", "token-id"),
            ({"model": "haiku", "input": "x"}, "model", "not a supported embedding model"),
        ]
        for i, (body, param, says) in enumerate(cases):
            with self.subTest(body=body):
                r = self.post("/v1/embeddings", body, f"it-br-embed-refused-{i}")
                self.assertEqual(r.status, 400, r.body)
                err = r.json()["error"]
                self.assertEqual((err["type"], err["param"]), ("invalid_request_error", param))
                self.assertIn(says, err["message"])
        self.assertEqual(self.fake.count(), before)  # nothing was sent

    def test_embedding_upstream_validation_error(self):
        # Bedrock validates Titan's dimensions itself; its error reaches the client.
        r = self.post("/v1/embeddings", {"model": "titan2", "input": "x", "dimensions": 300},
                      "it-br-embed-invalid")
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(r.json()["error"]["type"], "ValidationException")
        self.assertIn("dimensions", r.json()["error"]["message"])

    def test_usage_by_model_through_the_cli(self):
        r = self.post("/v1/embeddings", {"model": "titan2", "input": "count me"}, "it-br-by-model")
        self.assertEqual(r.status, 200, r.body)
        self.ws.wait_usage_record("it-br-by-model")
        # The per-model totals agree with the individual records (whatever
        # other tests sent before), errors counted apart.
        records = [u for u in self.ws.usage() if u["model"] == "titan2"]
        group = next(g for g in self.ws.cli("usage", "--by", "model") if g["group"] == "titan2")
        self.assertEqual(group["requests"], len(records))
        self.assertEqual(group["errors"], sum(u["status"] >= 400 for u in records))
        self.assertEqual(group["prompt_tokens"], sum(u["prompt_tokens"] for u in records))
        self.assertGreater(group["prompt_tokens"], 0)
        self.assertAlmostEqual(group["cost"], group["prompt_tokens"] * 0.02 / 1e6)
        by_conn = {g["group"]: g for g in self.ws.cli("usage", "--by", "connection")}
        self.assertEqual(by_conn["aws"]["requests"],
                         sum(u["conn_name"] == "aws" for u in self.ws.usage()))

if __name__ == "__main__":
    unittest.main()
