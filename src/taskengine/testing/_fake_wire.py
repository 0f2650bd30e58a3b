"""Response bodies of the fake LLM server in OpenAI's and Ollama's wire formats (pure functions)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import struct
import time
import uuid
from typing import Any

#: The tool-name pattern OpenAI enforces; the fake rejects other names the same way.
OPENAI_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

#: Body sent for `malformed=True` on non-streaming endpoints.
MALFORMED_JSON = '{"id": "broken", "choices": [{"mess'
MALFORMED_SSE = 'data: {"id": "x", "choices": [\n\n'
MALFORMED_NDJSON = '{"message": {"content": "x"\n'


def count_tokens(text: str) -> int:
    """The fake's deterministic token count: whitespace-separated words."""
    return len(text.split())


def error_body(api: str, status: int, message: str | None = None) -> dict[str, Any]:
    message = message or f"fake error {status}"
    if api == "ollama":
        return {"error": message}
    if status == 429:
        kind = "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": status}}


def context_error(prompt_tokens: int, context_size: int) -> dict[str, Any]:
    """llama.cpp's answer to a prompt longer than its context (HTTP 400)."""
    return {
        "error": {
            "code": 400,
            "message": f"request ({prompt_tokens} tokens) exceeds the available context size "
            f"({context_size} tokens), try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": prompt_tokens,
            "n_ctx": context_size,
        }
    }


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def embed_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    items = value if isinstance(value, list) else [value]
    return ["" if v is None else str(v) for v in items]


def normalise_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Rule tool calls with an id each; arguments stay as given (object or JSON text)."""
    out = []
    for index, call in enumerate(calls or []):
        call_id = call.get("id") or f"call_{index}_{uuid.uuid4().hex[:8]}"
        out.append({"id": call_id, "name": call["name"], "arguments": call.get("arguments", {})})
    return out


def _args_text(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def usage(messages: list[Any], content: str, calls: list[dict[str, Any]]) -> dict[str, int]:
    prompt = sum(
        count_tokens(content_text(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    completion = count_tokens(content) + sum(
        1 + count_tokens(_args_text(c["arguments"])) for c in calls
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def cut(content: str, max_tokens: Any, finish: str) -> tuple[str, str]:
    """The reply stopped after `max_tokens` tokens (words) and its finish reason (`length`
    when it was cut, as OpenAI and llama.cpp report it)."""
    if not isinstance(max_tokens, int) or max_tokens <= 0 or count_tokens(content) <= max_tokens:
        return content, finish
    return "".join(pieces(content)[:max_tokens]).rstrip(), "length"


def pieces(text: str) -> list[str]:
    """Split a reply into streaming deltas (a word with its surrounding spaces)."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def argument_pieces(args: str) -> list[str]:
    """Tool-call arguments cut into token-sized pieces (a word, or a run of punctuation), the way
    a real server streams them; always at least one (possibly empty) piece."""
    return re.findall(r"\s*\w+|\s*[^\w\s]+|\s+", args) or [args]


def embedding(text: str, dim: int) -> list[float]:
    """A unit vector derived from a hash of `text`: same text, same vector, every run."""
    raw = hashlib.shake_256(text.encode()).digest(dim * 4)
    values = [
        (int.from_bytes(raw[i : i + 4], "big") / 0xFFFFFFFF) * 2 - 1 for i in range(0, dim * 4, 4)
    ]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


# --- OpenAI ----------------------------------------------------------------------------------


def _openai_call(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": _args_text(call["arguments"])},
    }


def openai_completion(
    model: str,
    content: str,
    calls: list[dict[str, Any]],
    used: dict[str, int] | None,
    finish: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else content}
    if calls:
        message["tool_calls"] = [_openai_call(c) for c in calls]
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else finish}
        ],
    }
    if used is not None:
        body["usage"] = used
    return body


def openai_stream(
    model: str,
    content: str,
    calls: list[dict[str, Any]],
    used: dict[str, int] | None,
    include_usage: bool,
    finish: str = "stop",
) -> list[str]:
    """SSE events as llama.cpp's server sends them: the role (content null), content deltas,
    tool calls (id, type and name with the first argument piece, then the arguments in small
    pieces), an empty delta with the finish reason, usage (only when asked for), [DONE]."""
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
    }
    head["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": None})]
    events += [chunk({"content": piece}) for piece in pieces(content)]
    for index, call in enumerate(calls):
        wire = _openai_call(call)
        parts = argument_pieces(wire["function"]["arguments"])
        first = {"name": wire["function"]["name"], "arguments": parts[0]}
        head_call = {"index": index, "id": wire["id"], "type": "function", "function": first}
        events.append(chunk({"tool_calls": [head_call]}))
        events += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            for part in parts[1:]
        ]
    events.append(chunk({}, "tool_calls" if calls else finish))
    if include_usage and used is not None:
        events.append({**head, "choices": [], "usage": used})
    return [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]


def openai_embeddings(
    model: str, vectors: list[list[float]], tokens: int, b64: bool
) -> dict[str, Any]:
    data = []
    for index, vector in enumerate(vectors):
        value: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if b64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def openai_models(models: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in models],
    }


# --- Ollama ----------------------------------------------------------------------------------


def _ollama_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in calls:
        args = c["arguments"]
        if isinstance(args, str):
            with contextlib.suppress(ValueError):  # broken text stays: the test asked for it
                args = json.loads(args)
        out.append({"function": {"name": c["name"], "arguments": args}})
    return out


def _ollama_final(model: str, used: dict[str, int] | None, finish: str) -> dict[str, Any]:
    final: dict[str, Any] = {
        "model": model,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "done": True,
        "done_reason": "length" if finish == "length" else "stop",
        "total_duration": 1000,
        "load_duration": 0,
    }
    if used is not None:
        final["prompt_eval_count"] = used["prompt_tokens"]
        final["eval_count"] = used["completion_tokens"]
    return final


def ollama_chat(
    model: str,
    content: str,
    calls: list[dict[str, Any]],
    used: dict[str, int] | None,
    finish: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = _ollama_calls(calls)
    return {**_ollama_final(model, used, finish), "message": message}


def ollama_stream(
    model: str,
    content: str,
    calls: list[dict[str, Any]],
    used: dict[str, int] | None,
    finish: str = "stop",
) -> list[str]:
    """NDJSON lines: content deltas, one line with the tool calls, then the final `done` line."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    messages: list[dict[str, Any]] = [
        {"role": "assistant", "content": piece} for piece in pieces(content)
    ]
    if calls:
        messages.append({"role": "assistant", "content": "", "tool_calls": _ollama_calls(calls)})
    lines = [
        json.dumps({"model": model, "created_at": now, "done": False, "message": m}) + "\n"
        for m in messages
    ]
    final = {**_ollama_final(model, used, finish), "message": {"role": "assistant", "content": ""}}
    return [*lines, json.dumps(final) + "\n"]


def ollama_embed(model: str, vectors: list[list[float]], tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "embeddings": vectors,
        "total_duration": 1000,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }


def ollama_tags(models: list[str]) -> dict[str, Any]:
    entries = [
        {
            "name": m,
            "model": m,
            "modified_at": "2024-01-01T00:00:00Z",
            "size": 0,
            "digest": hashlib.sha256(m.encode()).hexdigest(),
            "details": {},
        }
        for m in models
    ]
    return {"models": entries}
