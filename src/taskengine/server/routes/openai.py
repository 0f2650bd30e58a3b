"""An OpenAI-compatible endpoint per stored chain: `/openai/{chain_id}/v1/chat/completions`.

The request runs the chain as `openai_chat` input (so `model_execution` tasks see the whole
conversation, its tools and temperature). The request's `model` is ignored when it names the
chain (or is empty), so the chain's own models apply; any other value fills in where a task
names no model. With `stream: true` the answer is sent as `chat.completion.chunk` events as the
model's tokens arrive. Which tokens: those of `model_execution` tasks (or, in a chain without
one, of `raw_string` tasks that can end it), so a classifier's reply never leaks into the
answer; whatever of the final answer was not streamed follows as one chunk. A step that may
still be retried is held back until its attempt succeeds, so the client receives exactly the
run's output, never text of a failed attempt (only the last allowed attempt streams live).

The chain's input is the request without its transport fields (`stream`, `stream_options`):
streaming changes how the answer travels, never what the chain sees (docs/openai-endpoint.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from taskengine.chain import TERM_END, TaskChainDefinition
from taskengine.datatypes import DataType, OpenAIChatRequest, convert_to_type
from taskengine.errors import TaskEngineError
from taskengine.ids import new_id
from taskengine.server.deps import ServerState, get_state, read_json, request_id, state_of
from taskengine.server.errors import ApiError, engine_error_response
from taskengine.server.openai_format import (
    completion_from_output,
    sse,
    stream_chunk,
    tool_call_deltas,
)

__all__ = ["router"]

logger = logging.getLogger("taskengine.server")

router = APIRouter(prefix="/openai/{chain_id}/v1", tags=["openai"])


def _model_entry(chain_id: str, record: Any) -> dict[str, Any]:
    created = int(record.created_at.timestamp()) if record.created_at else 0
    return {"id": chain_id, "object": "model", "created": created, "owned_by": "taskengine"}


@router.get("/models", summary="The chain, listed as the one model of this endpoint")
async def list_models(chain_id: str, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    record = await state.store.get_chain(chain_id)
    return {"object": "list", "data": [_model_entry(chain_id, record)]}


@router.get("/models/{model_id}", summary="The chain as a model object")
async def get_model(
    chain_id: str, model_id: str, state: ServerState = Depends(get_state)
) -> dict[str, Any]:
    record = await state.store.get_chain(chain_id)
    if model_id != chain_id:
        raise ApiError(404, f"model {model_id!r} is not served here (this endpoint serves {chain_id!r})",
                       type="NotFoundError", code="model_not_found")  # fmt: skip
    return _model_entry(chain_id, record)


def _parse_request(body: Any, chain_id: str) -> tuple[OpenAIChatRequest, bool, bool]:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a chat-completions request object", type="BadRequestError",
                       code="invalid_request")  # fmt: skip
    messages = body.get("messages")
    if isinstance(messages, list):
        body = {**body, "messages": [_flatten_content(m, i) for i, m in enumerate(messages)]}
    if body.get("model") == chain_id:  # the chain's own name: the chain picks its models
        body = {**body, "model": ""}
    req: OpenAIChatRequest = convert_to_type(body, DataType.OPENAI_CHAT)
    if not req.messages:
        raise ApiError(400, "'messages' must hold at least one message", type="BadRequestError",
                       code="invalid_request", field="messages")  # fmt: skip
    if req.n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", type="BadRequestError", code="invalid_request",
                       field="n")  # fmt: skip
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    return _without_transport(req), bool(req.stream), include_usage


def _without_transport(req: OpenAIChatRequest) -> OpenAIChatRequest:
    """The chain's input: the request minus how the answer travels (`stream`; `stream_options`
    is never kept), so a chain sees the same input whether or not the client streams."""
    return req.model_copy(update={"stream": None}) if req.stream is not None else req


def _echoed_model(body: dict[str, Any], chain_id: str) -> str:
    """The `model` the client asked for, echoed in every completion and chunk as the Go API does."""
    asked = body.get("model")
    return asked if isinstance(asked, str) and asked else chain_id


def _flatten_content(message: Any, index: int) -> Any:
    """Content given as a list of parts (the newer OpenAI shape) becomes its text."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    texts = []
    for part in message["content"]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "input_text"):
            raise ApiError(400, f"messages[{index}].content: only text parts are supported, got {kind!r}",
                           type="BadRequestError", code="invalid_request",
                           field=f"messages.{index}.content")  # fmt: skip
        texts.append(str(part.get("text", "")))
    return {**message, "content": "".join(texts)}


@router.post("/chat/completions", summary="Run the chain as a chat model (OpenAI format)")
async def chat_completions(chain_id: str, request: Request) -> Any:
    """A `chat.completion` object, or with `stream: true` SSE `chat.completion.chunk` events."""
    state = state_of(request)
    body = await read_json(request)
    chain = await state.stored_chain(chain_id)
    req, stream, include_usage = _parse_request(body, chain_id)
    echoed = _echoed_model(body, chain_id)
    run_id = new_id()
    completion_id = f"chatcmpl-{run_id}"
    rid = request_id(request)
    tools = list(req.tools) if req.tools else None
    if not stream:
        result = await state.run_chain(chain, req, DataType.OPENAI_CHAT, request_id=rid, run_id=run_id,
                                       client_tools=tools)  # fmt: skip
        response = completion_from_output(result.output, completion_id=completion_id,
                                          model=echoed, totals=result.totals)  # fmt: skip
        return JSONResponse(response.dump(), headers={"X-Run-ID": run_id})
    streamer = _RunStream(state, chain, req, rid, run_id, completion_id, include_usage, tools,
                          model=echoed)  # fmt: skip
    state.limiter.acquire()  # 429 now, before any byte of the stream is sent
    streamer.start()
    try:
        first = await streamer.next_item()
    except BaseException:
        await streamer.aclose()
        raise
    if first[0] == "error":
        await streamer.aclose()
        return engine_error_response(first[1])
    return _StreamResponse(
        streamer,
        streamer.events(first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Run-ID": run_id, "X-Accel-Buffering": "no"},
    )


class _StreamResponse(StreamingResponse):
    """A streaming response that always stops its run and frees its slot, even when the client
    leaves mid-stream (then Starlette abandons the body iterator without closing it)."""

    def __init__(self, streamer: _RunStream, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.streamer = streamer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                iterator = self.body_iterator
                if hasattr(iterator, "aclose"):
                    await iterator.aclose()
            finally:
                await self.streamer.aclose()


def _streamed_tasks(chain: TaskChainDefinition) -> frozenset[str]:
    """Tasks whose tokens are the answer (see the module docstring)."""
    answer = {t.id for t in chain.tasks if t.handler == "model_execution"}
    if answer:
        return frozenset(answer)

    def can_end(task: Any) -> bool:
        branches = task.transition.branches
        return not branches or any(not b.goto or b.goto == TERM_END for b in branches)

    return frozenset(t.id for t in chain.tasks if t.handler == "raw_string" and can_end(t))


def _retries(chain: TaskChainDefinition, cap: int | None) -> dict[str, int]:
    """How often each task may be retried (its `retry_on_failure`, capped by the settings)."""
    return {
        t.id: min(t.retry_on_failure, cap) if cap is not None else t.retry_on_failure
        for t in chain.tasks
    }


class _RunStream:
    """Runs the chain in a task and turns its token deltas and result into SSE chunks.

    Holds one limiter slot from `start()` until `aclose()`, which is idempotent and also runs
    as the response's background task, so a client that disconnects early frees it.
    """

    def __init__(self, state: ServerState, chain: TaskChainDefinition, req: OpenAIChatRequest, rid: str,
                 run_id: str, completion_id: str, include_usage: bool, tools: list[Any] | None,
                 *, model: str) -> None:  # fmt: skip
        self.state = state
        self.model = model
        self.chain = chain
        self.req = req
        self.rid = rid
        self.run_id = run_id
        self.completion_id = completion_id
        self.include_usage = include_usage
        self.tools = tools
        self.answer_tasks = _streamed_tasks(chain)
        self.retries = _retries(chain, state.runtime.env.max_retries)
        self.live = True
        self.held: list[str] = []
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.created = int(time.time())
        self._closed = False

    def _on_event(self, event: dict[str, Any]) -> None:
        """Forward the answer's deltas; those of an attempt that may still be retried wait.

        An attempt that fails after some chunks would otherwise leave its text in the client's
        answer before the retry's. So only an attempt that cannot be retried streams live; an
        earlier one is held until it succeeds (then sent at once) or fails (then dropped).
        """
        kind = event["type"]
        if kind == "step_start" and event["taskID"] in self.answer_tasks:
            self.live = event["attempt"] > self.retries.get(event["taskID"], 0)
            self.held = []
        elif kind == "delta" and event["taskID"] in self.answer_tasks and event["delta"]:
            if self.live:
                self.queue.put_nowait(("delta", event["delta"]))
            else:
                self.held.append(event["delta"])
        elif kind == "step_end" and event["step"]["taskID"] in self.answer_tasks:
            if not event["step"].get("error") and self.held:
                self.queue.put_nowait(("delta", "".join(self.held)))
            self.held = []

    async def _run(self) -> None:
        try:
            result = await self.state.run_chain(
                self.chain, self.req, DataType.OPENAI_CHAT, request_id=self.rid, run_id=self.run_id,
                on_event=self._on_event, client_tools=self.tools, admitted=True,
            )  # fmt: skip
        except TaskEngineError as exc:
            self.queue.put_nowait(("error", exc))
        except Exception as exc:  # reported in the stream; the log keeps the traceback
            logger.exception("streamed run %s crashed", self.run_id)
            error = ApiError(500, f"internal error: {type(exc).__name__}", type="InternalServerError",
                             code="internal_error")  # fmt: skip
            self.queue.put_nowait(("error", error))
        else:
            self.queue.put_nowait(("done", result))

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def next_item(self) -> tuple[str, Any]:
        return await self.queue.get()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task = self.task
        try:
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait([task])  # let the run record itself as interrupted
        finally:
            # also when this wait is itself cancelled (a disconnect cancels the whole scope)
            self.state.limiter.release()

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None,
               usage: dict[str, int] | None = None) -> bytes:  # fmt: skip
        return sse(stream_chunk(self.completion_id, self.created, self.model, delta, finish, usage))

    async def events(self, first: tuple[str, Any]) -> AsyncIterator[bytes]:
        streamed: list[str] = []
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            item = first
            while True:
                kind, value = item
                if kind == "delta":
                    streamed.append(value)
                    yield self._chunk({"content": value})
                elif kind == "error":
                    # Headers are gone; OpenAI clients read an `error` object in the stream.
                    yield sse({"error": value.to_dict()})
                    break
                else:
                    for piece in self._final(value, "".join(streamed)):
                        yield piece
                    break
                item = await self.queue.get()
            yield sse("[DONE]")
        finally:
            await self.aclose()

    def _final(self, result: Any, streamed: str) -> list[bytes]:
        response = completion_from_output(result.output, completion_id=self.completion_id,
                                          model=self.model, totals=result.totals)  # fmt: skip
        choice = response.choices[0]
        content = choice.message.content or ""
        out: list[bytes] = []
        if content and content != streamed:
            # What the answer holds beyond what was streamed (everything, if nothing was).
            rest = content[len(streamed) :] if content.startswith(streamed) else content
            if rest:
                out.append(self._chunk({"content": rest}))
        calls = tool_call_deltas(response)
        if calls:
            out.append(self._chunk({"tool_calls": calls}))
        out.append(self._chunk({}, "tool_calls" if calls else (choice.finish_reason or "stop")))
        if self.include_usage:
            out.append(self._chunk(None, usage=response.usage.dump()))
        return out
