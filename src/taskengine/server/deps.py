"""What routes share: the server state built in the lifespan, and small request helpers.

`ServerState` holds the one `Runtime` (engine, store, providers, hooks, activity) plus the run
limiter; routes get it with `Depends(get_state)`. `run_chain` is the single place a route runs
a chain, so admission control, the run deadline and the request id apply to every front door.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request

from taskengine.bounds import check_depth
from taskengine.chain import TaskChainDefinition, load_chain
from taskengine.errors import ChainLoadError, DataConversionError, TaskEngineError
from taskengine.ids import new_id
from taskengine.server.errors import ApiError
from taskengine.server.limits import RunLimiter, with_run_timeout

if TYPE_CHECKING:
    from taskengine.datatypes import Tool
    from taskengine.engine import EventCallback, RunResult
    from taskengine.runtime import Runtime
    from taskengine.server.remote_hooks import StoredRemoteHooks

__all__ = [
    "ServerState",
    "chain_from_value",
    "get_state",
    "off_loop",
    "page_limit",
    "read_json",
    "request_id",
]

T = TypeVar("T")

MAX_PAGE = 1000
#: stored chains kept validated in memory (oldest dropped first)
CHAIN_CACHE_SIZE = 256


def _secret_store(runtime: Any) -> Any:
    from taskengine.store.secret_store import SecretStore

    return SecretStore(runtime.store) if runtime.store is not None else None


class ServerState:
    """Everything the routes need, created once per app in the lifespan."""

    def __init__(
        self,
        settings: Any,
        runtime: Runtime,
        *,
        metrics: Any = None,
        remote_hooks: StoredRemoteHooks | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = metrics
        self.remote_hooks = remote_hooks
        #: header and injected-body values of remote hooks live here, encrypted
        self.secrets = _secret_store(runtime)
        self.limiter = RunLimiter(settings.server.max_concurrent_runs)
        self.run_timeout: float | None = settings.limits.run_timeout
        self._chains: dict[str, tuple[Any, TaskChainDefinition]] = {}

    async def stored_chain(self, chain_id: str) -> TaskChainDefinition:
        """A chain from the registry, validated once per stored version (not on every request)."""
        record = await self.store.get_chain(chain_id)
        cached = self._chains.get(chain_id)
        if cached is not None and cached[0] == record.updated_at:
            return cached[1]
        chain = await off_loop(load_chain, record.definition)
        if len(self._chains) >= CHAIN_CACHE_SIZE:
            self._chains.pop(next(iter(self._chains)))
        self._chains[chain_id] = (record.updated_at, chain)
        return chain

    @property
    def store(self) -> Any:
        store = self.runtime.store
        if store is None:
            raise ApiError(
                500,
                "this server runs without a run store",
                type="ServerConfigError",
                code="no_store",
            )
        return store

    @property
    def activity(self) -> Any:
        sink = self.runtime.activity
        if sink is None:
            raise ApiError(
                404,
                "activity tracking is off on this server",
                type="NotFoundError",
                code="not_found",
            )
        return sink

    async def run_chain(
        self,
        chain: TaskChainDefinition,
        input: Any,
        input_type: Any,
        *,
        request_id: str,
        run_id: str | None = None,
        on_event: EventCallback | None = None,
        client_tools: list[Tool] | None = None,
        breakpoints: Iterable[str] = (),
        admitted: bool = False,
    ) -> RunResult:
        """Run a chain under the limiter (unless the caller holds a slot) and the run deadline."""
        run_id = run_id or new_id()
        env = self.runtime.env
        if not env.is_checked(chain):
            await off_loop(env._checked, chain)  # lint (once per chain) off the event loop
        call = self.runtime.env.exec_env(
            chain, input, input_type, run_id=run_id, request_id=request_id,
            breakpoints=breakpoints, on_event=on_event, client_tools=client_tools,
        )  # fmt: skip
        if admitted:
            return await with_run_timeout(call, self.run_timeout, run_id=run_id, chain_id=chain.id)
        try:
            self.limiter.acquire()
        except TaskEngineError:
            call.close()  # never started: close the coroutine so it is not reported as unawaited
            raise
        try:
            return await with_run_timeout(call, self.run_timeout, run_id=run_id, chain_id=chain.id)
        finally:
            self.limiter.release()


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run CPU-heavy validation (chain loading, lint) in a worker thread, not on the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def get_state(request: Request) -> ServerState:
    """The app's state. `async` so FastAPI calls it on the loop, not through its thread pool
    (a plain `def` dependency costs every request a hop to a worker thread and back)."""
    return state_of(request)


def state_of(request: Request) -> ServerState:
    """The app's state, for the two routes every run comes through (`POST /tasks`, the OpenAI
    endpoint): read directly, it spares them FastAPI's dependency solving on each request."""
    return request.app.state.taskengine


def request_id(request: Request) -> str:
    """The id the middleware gave this request (the caller's `X-Request-ID` when sane)."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid or new_id()


async def read_json(request: Request) -> Any:
    """The request body as JSON; an empty or malformed body is a 400 naming the problem."""
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON object", type="BadRequestError",
                       code="invalid_json")  # fmt: skip
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "the request body nests too deeply", type="BadRequestError",
                       code="invalid_json", field="body") from None  # fmt: skip
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" at line {exc.lineno}, column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise ApiError(400, f"the request body is not valid JSON{where}", type="BadRequestError",
                       code="invalid_json") from None  # fmt: skip
    return check_depth(value, field="body")  # deep nesting, lone surrogates: 400 naming where


def chain_from_value(value: Any, *, field: str = "chain") -> TaskChainDefinition:
    """A validated chain from a JSON object or YAML/JSON text (never a server-side file path)."""
    if isinstance(value, str):
        import yaml

        try:
            if value.lstrip().startswith(("{", "[")):
                value = json.loads(value)
            else:
                value = yaml.safe_load(value)
        except RecursionError:
            raise ChainLoadError(f"{field}: nests too deeply", field=field) from None
        except json.JSONDecodeError as exc:
            raise ChainLoadError(
                f"{field}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                field=field,
            ) from None
        except yaml.YAMLError as exc:  # the first line names the place
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ChainLoadError(f"{field}: invalid YAML: {first}", field=field) from None
    if not isinstance(value, dict):
        kind = "nothing" if value is None else type(value).__name__
        raise DataConversionError(
            f"{field} must be a chain object (or YAML/JSON text of one), got {kind}", field=field
        )
    return load_chain(value)


def page_limit(limit: int) -> int:
    if limit < 1:
        raise DataConversionError(f"limit must be at least 1, got {limit}", field="limit")
    return min(limit, MAX_PAGE)
