"""Remote OpenAPI hooks against a real HTTP server on loopback."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import BaseModel

from taskengine.chain import HookCall
from taskengine.datatypes import DataType
from taskengine.errors import HookError
from taskengine.hooks import HookContext, HookRegistry, LocalHookRegistry
from taskengine.hooks.remote import RemoteHook, RemoteHookConfig, RemoteHookRepo, parse_seconds

from .fakeapi import SECRET_KEY, SECRET_TENANT, SECRET_TOKEN, SECRETS, FakeApi


class ShopItem(BaseModel):
    name: str
    price: float | None = None
    tenant: str


CTX = HookContext(run_id="run-1", chain_id="c", task_id="order", attempt=1, step=2)


def orders_hook(api: FakeApi, **overrides) -> RemoteHook:
    settings = {
        "name": "orders",
        "url": f"{api.base}/v30",
        "headers": {"Authorization": f"Bearer {SECRET_TOKEN}", "X-Api-Key": SECRET_KEY},
        "inject_body": {"tenant_id": SECRET_TENANT},
        "timeout": 5,
    }
    settings.update(overrides)
    return RemoteHook(**settings)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def run(
    repo, tool: str, args: dict | None = None, typed: dict | None = None, ctx=CTX, hook="orders"
):
    call = HookCall(name=hook, tool_name=tool, args=args or {})
    return await repo.exec(
        call, input="the input", input_type=DataType.STRING, context=ctx, args=typed
    )


async def test_openapi_30_operations_become_tools_without_injected_fields(api: FakeApi) -> None:
    async with RemoteHookRepo([orders_hook(api)]) as repo:
        tools = {
            t.function.name: t.function for t in await repo.get_tools_for_hook_by_name("orders")
        }
    assert set(tools) == {
        "orders.createOrder",
        "orders.getOrder",
        "orders.search",
        "orders.missing",
        "orders.broken",
        "orders.plainText",
        "orders.slow",
        "orders.leaky",
    }  # no operationId → no tool; multipart bodies cannot be built from tool args
    create = tools["orders.createOrder"]
    assert create.description == "Create an order."
    props = create.parameters["properties"]
    assert set(props) == {
        "item",
        "quantity",
        "note",
    }  # injected tenant_id, readOnly id, header param gone
    assert create.parameters["required"] == ["item", "quantity"]
    assert props["note"]["type"] == ["string", "null"]  # 3.0 nullable → JSON Schema
    assert props["item"]["examples"] == ["book"] and "example" not in props["item"]
    get_order = tools["orders.getOrder"].parameters
    assert get_order["properties"]["order_id"] == {"type": "integer"}  # $ref'd path-level parameter
    assert get_order["required"] == ["order_id"]
    limit = tools["orders.search"].parameters["properties"]["limit"]
    assert limit == {"type": "integer", "exclusiveMinimum": 0}  # 3.0 boolean bound converted


async def test_call_injects_headers_body_and_idempotency_key(api: FakeApi) -> None:
    async with RemoteHookRepo([orders_hook(api)]) as repo:
        output, kind = await run(repo, "createOrder", {"item": "book", "quantity": "2"})
    assert kind is DataType.JSON
    assert output["body"] == {"item": "book", "quantity": 2, "tenant_id": "***"}
    [call] = api.calls
    assert (call.method, call.path) == ("POST", "/orders")
    assert call.headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
    assert call.headers["X-Api-Key"] == SECRET_KEY
    assert call.headers["Idempotency-Key"] == CTX.idempotency_key == "run-1:order:2"
    assert call.body == {"item": "book", "quantity": 2, "tenant_id": SECRET_TENANT}
    # the document fetch was authenticated too
    assert api.doc_headers[0]["Authorization"] == f"Bearer {SECRET_TOKEN}"


async def test_path_and_query_params_and_typed_args_take_precedence(api: FakeApi) -> None:
    async with RemoteHookRepo([orders_hook(api)]) as repo:
        output, _ = await run(
            repo, "getOrder", {"order_id": "1", "verbose": "no"}, {"order_id": 7, "verbose": True}
        )
        await run(repo, "search", {"q": "a b/c", "limit": "5"})
    assert output["path"] == "/orders/7" and output["query"] == {"verbose": "true"}
    assert api.calls[1].query == {"q": "a b/c", "limit": "5"}
    assert all(c.method == "GET" and c.body is None for c in api.calls)


async def test_openapi_31_refs_type_lists_and_put_body(api: FakeApi) -> None:
    repo = RemoteHookRepo([RemoteHook("items", f"{api.base}/v31")])
    async with repo:
        [update] = [
            t
            for t in await repo.get_tools_for_hook_by_name("items")
            if t.function.name == "items.updateItem"
        ]
        params = update.function.parameters
        assert params["properties"]["colour"] == {"type": ["string", "null"]}
        assert params["properties"]["parts"]["items"] == {
            "type": "object",
            "properties": {"sku": {"type": "string"}},
        }
        out, _ = await run(
            repo,
            "updateItem",
            {"item_id": "x 1"},
            {"name": "lamp", "colour": None, "parts": [{"sku": "s1"}]},
            hook="items",
        )
        tags, _ = await run(repo, "setTags", {"body": '["a", "b"]'}, hook="items")
    assert out["method"] == "PUT" and out["raw"] == "/v31/items/x%201"
    assert out["body"] == {"name": "lamp", "colour": None, "parts": [{"sku": "s1"}]}
    assert tags["body"] == ["a", "b"]  # a non-object body is one `body` parameter


async def test_bad_arguments_fail_before_any_request(api: FakeApi) -> None:
    async with RemoteHookRepo([orders_hook(api)]) as repo:
        with pytest.raises(HookError) as bad_type:
            await run(repo, "createOrder", {"item": "book", "quantity": "lots"})
        with pytest.raises(HookError) as missing:
            await run(repo, "createOrder", {"item": "book"})
        with pytest.raises(HookError) as injected:
            await run(repo, "createOrder", {"item": "b", "quantity": "1"}, {"tenant_id": "other"})
    assert api.calls == []
    err = bad_type.value
    assert (err.hook, err.tool, err.field) == ("orders", "createOrder", "quantity")
    assert "orders" in str(err) and "createOrder" in str(err) and "'lots'" in str(err)
    assert "quantity" in str(missing.value) and "required" in str(missing.value)
    # the model cannot overwrite (or learn about) an injected property
    assert injected.value.field == "tenant_id" and "not a parameter" in str(injected.value)


async def test_secrets_never_reach_tools_schemas_outputs_or_errors(api: FakeApi) -> None:
    hook = orders_hook(api)
    config = RemoteHookConfig(
        name="orders", url=f"{api.base}/v30", headers=hook.headers, inject_body=hook.inject_body
    )
    async with RemoteHookRepo([hook]) as repo:
        tools = await repo.get_tools_for_hook_by_name("orders")
        schemas = await repo.get_schemas_for_supported_hooks()
        leaked, _ = await run(repo, "leaky")
        with pytest.raises(HookError) as not_found:
            await run(repo, "missing")
    assert leaked == {"auth": "***", "ok": True}  # the server echoed it; we redacted it
    assert "HTTP 404" in str(not_found.value) and "***" in str(not_found.value)
    for text in (
        json.dumps([t.dump() for t in tools]),
        json.dumps(schemas),
        json.dumps(leaked),
        str(not_found.value),
        json.dumps(not_found.value.to_dict()),
        repr(hook),
        repr(config),
        repr(repo),
    ):
        assert_no_secret(text)
    assert "tenant_id" not in json.dumps([t.dump() for t in tools])


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ("missing", "HTTP 404"),
        ("broken", "HTTP 500"),
        ("plainText", "not JSON"),
    ],
)
async def test_http_failures_name_hook_tool_and_status(
    api: FakeApi, tool: str, expected: str
) -> None:
    async with RemoteHookRepo([orders_hook(api)]) as repo:
        with pytest.raises(HookError) as info:
            await run(repo, tool)
    message = str(info.value)
    assert expected in message and "'orders'" in message and repr(tool) in message
    assert (info.value.hook, info.value.tool) == ("orders", tool)
    if tool == "broken":
        assert "kaboom" in message  # a truncated excerpt of the body
    if tool == "plainText":
        assert "text/html" in message


async def test_slow_hook_times_out_with_the_shorter_of_hook_and_task_timeout(api: FakeApi) -> None:
    async with RemoteHookRepo([orders_hook(api, timeout=5)]) as repo:
        await repo.get_tools_for_hook_by_name("orders")
        started = time.monotonic()
        with pytest.raises(HookError) as info:
            await run(repo, "slow", ctx=HookContext(run_id="r", task_id="t", timeout=0.3))
        elapsed = time.monotonic() - started
    assert "timed out after 0.3s" in str(info.value) and info.value.tool == "slow"
    assert elapsed < 3


async def test_down_hook_is_a_clear_error(dead_url: str) -> None:
    async with RemoteHookRepo([RemoteHook("orders", dead_url, timeout=2)]) as repo:
        with pytest.raises(HookError) as info:
            await repo.get_tools_for_hook_by_name("orders")
        schemas = await repo.get_schemas_for_supported_hooks()
    assert "'orders'" in str(info.value) and "cannot reach" in str(info.value)
    assert info.value.hook == "orders"
    assert "cannot reach" in schemas["orders"]["error"]  # listing survives a down hook


async def test_document_is_cached_for_its_ttl(api: FakeApi) -> None:
    async with RemoteHookRepo(
        [orders_hook(api, schema_ttl=60), RemoteHook("items", f"{api.base}/v31", schema_ttl=0)]
    ) as repo:
        await repo.get_tools_for_hook_by_name("orders")
        await run(repo, "search", {"q": "x"})
        await repo.get_tools_for_hook_by_name("orders")
        assert api.doc_fetches["v30"] == 1
        await repo.get_tools_for_hook_by_name("items")
        await repo.get_tools_for_hook_by_name("items")
        assert api.doc_fetches["v31"] == 2  # ttl 0: always refetched
        repo.invalidate("orders")
        await repo.get_tools_for_hook_by_name("orders")
        assert api.doc_fetches["v30"] == 2
        # a refetch that fails keeps serving the last good document
        api.doc_status = 503
        tools = await repo.get_tools_for_hook_by_name("items")
        assert api.doc_fetches["v31"] == 3 and any(t.function.name == "items.ping" for t in tools)


async def test_tool_selection(api: FakeApi) -> None:
    async with RemoteHookRepo([RemoteHook("orders", f"{api.base}/v30")]) as repo:
        with pytest.raises(HookError, match=r"set hook\.tool_name"):
            await run(repo, "")
        with pytest.raises(HookError, match="did you mean 'search'"):
            await run(repo, "serch")
        out, _ = await run(repo, "orders.search", {"q": "full name"})
        with pytest.raises(HookError, match="unknown remote hook 'order'"):
            await run(repo, "search", hook="order")
    assert out["query"] == {"q": "full name"}


async def test_not_an_openapi_3_document(api: FakeApi) -> None:
    async with RemoteHookRepo([RemoteHook("nope", f"{api.base}/nothing")]) as repo:
        with pytest.raises(HookError, match="HTTP 404"):
            await repo.get_tools_for_hook_by_name("nope")


async def test_remote_hooks_behind_the_composite_registry(api: FakeApi) -> None:
    local = LocalHookRegistry()
    local.register("shout", lambda text: text.upper(), name="upper", blocking=False)
    async with HookRegistry(local, RemoteHookRepo([orders_hook(api)])) as registry:
        assert await registry.supports() == ["orders", "shout"]
        out, _ = await run(registry, "search", {"q": "z"})
        shouted, kind = await run(registry, "upper", {"text": "hi"}, hook="shout")
    assert out["query"] == {"q": "z"} and (shouted, kind) == ("HI", DataType.STRING)


def test_config_validation_and_durations() -> None:
    cfg = RemoteHookConfig.model_validate(
        {
            "name": "crm",
            "url": "https://crm.example.com/api/",
            "headers": {"A": "b"},
            "timeout": "1m30s",
        }
    )
    assert cfg.timeout == 90 and cfg.url == "https://crm.example.com/api"
    hook = RemoteHook.from_config({"name": "crm", "url": "http://h", "timeout": "500ms"})
    assert hook.timeout == 0.5 and parse_seconds(3) == 3.0
    for bad in (
        {"name": "a.b", "url": "http://h"},
        {"name": "a", "url": "ftp://h"},
        {"name": "a", "url": "http://h", "timeout": "soon"},
    ):
        with pytest.raises(ValueError):
            RemoteHookConfig.model_validate(bad)
    with pytest.raises(HookError, match="configured twice"):
        RemoteHookRepo([hook, hook])


def test_a_fastapi_generated_document_parses() -> None:
    fastapi = pytest.importorskip("fastapi")
    from taskengine.hooks.openapi import parse_openapi

    app = fastapi.FastAPI()

    @app.post("/items/{shop}", operation_id="create_item")
    def create(
        shop: str, item: ShopItem, dry_run: bool = False, x_token: str = fastapi.Header()
    ) -> ShopItem:
        """Create an item."""
        return item

    ops = parse_openapi(app.openapi(), hook_name="shop", inject_keys={"tenant"})
    params = ops["create_item"].parameters
    assert params["required"] == ["shop", "name"]
    assert params["properties"] == {
        "shop": {"type": "string"},
        "dry_run": {"type": "boolean", "default": False},
        "name": {"type": "string"},
        "price": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    }
    assert "Create an item." in ops["create_item"].description
