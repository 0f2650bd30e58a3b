"""The chain registry (/taskchains) and the remote-hook registry (/hooks/remote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from .test_execution import ROUTER, assert_error

SECRET = "Bearer sk-remote-SECRET-9876"


def chain(chain_id: str) -> dict[str, Any]:
    return {**ROUTER, "id": chain_id, "description": f"chain {chain_id}"}


async def test_chain_crud(api: httpx.AsyncClient) -> None:
    created = await api.post("/taskchains", json=chain("triage"))
    assert created.status_code == 201
    assert created.json()["id"] == "triage" and created.json()["createdAt"]
    assert_error(await api.post("/taskchains", json=chain("triage")), 409, "conflict")

    response = await api.get("/taskchains/triage")
    got = response.json()  # the definition itself, as the Go API answers
    assert got["id"] == "triage" and got["description"] == "chain triage"
    assert [t["id"] for t in got["tasks"]] == ["parse", "done"]
    assert response.headers["x-created-at"] == created.json()["createdAt"]

    changed = {**chain("triage"), "description": "v2"}
    assert (await api.put("/taskchains/triage", json=changed)).json()["chain"][
        "description"
    ] == "v2"
    assert_error(await api.put("/taskchains/ghost", json=chain("ghost")), 404, "not_found")
    assert_error(await api.put("/taskchains/triage", json=chain("other")), 422)

    run = await api.post("/tasks", json={"input": "a=1", "chainId": "triage"})
    assert run.status_code == 200 and run.json()["chainId"] == "triage"

    assert (await api.delete("/taskchains/triage")).status_code == 204
    assert_error(await api.get("/taskchains/triage"), 404, "not_found")
    assert_error(await api.delete("/taskchains/triage"), 404)


async def test_chain_lint_failure_is_400_with_paths_and_nothing_stored(
    api: httpx.AsyncClient,
) -> None:
    bad = {"id": "bad", "tasks": [{"id": "a", "handler": "noop",
                                   "transition": {"branches": [{"operator": "default", "goto": "nowhere"}]}}]}  # fmt: skip
    error = assert_error(await api.post("/taskchains", json=bad), 400, "invalid_chain")
    assert any("nowhere" in p["message"] and p["task_id"] == "a" for p in error["problems"])
    assert_error(await api.get("/taskchains/bad"), 404)
    assert_error(await api.post("/taskchains", json={"tasks": ROUTER["tasks"]}), 400)


async def test_chain_yaml_body_and_lint_warnings(api: httpx.AsyncClient) -> None:
    text = "id: yamly\ntasks:\n  - id: a\n    handler: noop\n  - id: orphan\n    handler: noop\n"
    response = await api.post(
        "/taskchains", content=text, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 201
    assert [w["task_id"] for w in response.json()["warnings"]] == ["orphan"]


async def test_chain_listing_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    for i in range(5):
        assert (await api.post("/taskchains", json=chain(f"c{i}"))).status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/taskchains", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == [f"c{i}" for i in range(5)] and pages == 3
    assert_error(await api.get("/taskchains", params={"cursor": "garbage!"}), 400)
    assert_error(await api.get("/taskchains", params={"limit": 0}), 400)


# --- remote hooks ---------------------------------------------------------------------------


async def test_remote_hook_registry_hides_header_values(
    api: httpx.AsyncClient, greeter: dict[str, Any]
) -> None:
    record = {
        "name": "greeter",
        "url": greeter["url"],
        "headers": {"Authorization": SECRET},
        "timeout": 5,
    }
    created = await api.post("/hooks/remote", json=record)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["headers"] == {"Authorization": "***"} and hook["name"] == "greeter"
    assert_error(await api.post("/hooks/remote", json=record), 409, "conflict")
    assert_error(await api.post("/hooks/remote", json={**record, "name": "echo"}), 409)

    for path in (f"/hooks/remote/{hook['id']}", "/hooks/remote/by-name/greeter", "/hooks/remote"):
        text = (await api.get(path)).text
        assert "sk-remote-SECRET" not in text and "greeter" in text

    # The chain calls the registered hook; the secret header arrives but shows up nowhere.
    calls = {"id": "greet", "tasks": [{"id": "hi", "handler": "hook",
                                       "hook": {"name": "greeter", "tool_name": "greet", "args": {"name": "{{.input}}"}}}]}  # fmt: skip
    run = await api.post("/tasks", json={"input": "Ada", "chain": calls})
    assert run.status_code == 200, run.text
    assert run.json()["output"] == {"greeting": "hello Ada"}
    assert greeter["headers"][-1]["Authorization"] == SECRET
    for path in (f"/runs/{run.json()['runId']}", "/activity/logs", "/hooks/schemas"):
        assert "sk-remote-SECRET" not in (await api.get(path)).text
    schemas = (await api.get("/hooks/schemas")).json()
    assert schemas["greeter"]["tools"][0]["function"]["name"].endswith("greet")

    # PUT with the masked value keeps the stored secret; a new value replaces it.
    kept = await api.put(
        f"/hooks/remote/{hook['id']}",
        json={**record, "headers": {"Authorization": "***"}, "timeout": 7},
    )
    assert kept.status_code == 200 and kept.json()["timeout"] == 7
    await api.post("/tasks", json={"input": "Bo", "chain": calls})
    assert greeter["headers"][-1]["Authorization"] == SECRET

    assert (await api.delete(f"/hooks/remote/{hook['id']}")).status_code == 204
    assert_error(await api.get(f"/hooks/remote/{hook['id']}"), 404)
    assert_error(await api.get("/hooks/remote/by-name/greeter"), 404)
    gone = await api.post("/tasks", json={"input": "Cy", "chain": calls})
    assert gone.status_code >= 400 and "greeter" in gone.json()["error"]["message"]


async def test_remote_hook_validation_is_422_with_paths(api: httpx.AsyncClient) -> None:
    error = assert_error(
        await api.post("/hooks/remote", json={"name": "x y", "url": "ftp://nope"}), 422
    )
    paths = {p["path"] for p in error["problems"]}
    assert {"name", "url"} <= paths
    assert_error(await api.post("/hooks/remote", json=["not", "an", "object"]), 422)


async def test_remote_hook_secrets_are_encrypted_at_rest(
    api: httpx.AsyncClient, greeter: dict[str, Any], tmp_path: Path
) -> None:
    record = {"name": "greeter", "url": greeter["url"], "headers": {"Authorization": SECRET}}
    created = await api.post("/hooks/remote", json=record)
    assert created.status_code == 201, created.text
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("server.db*"))
    assert b"te_remote_hooks" in on_disk or b"greeter" in on_disk  # we did read the database
    assert SECRET.encode() not in on_disk
    chain = {"id": "greet", "tasks": [{"id": "hi", "handler": "hook",
                                       "hook": {"name": "greeter", "tool_name": "greet", "args": {"name": "x"}}}]}  # fmt: skip
    assert (await api.post("/tasks", json={"input": "x", "chain": chain})).status_code == 200
    assert greeter["headers"][-1]["Authorization"] == SECRET  # decrypted for the call
    assert (await api.delete(f"/hooks/remote/{created.json()['id']}")).status_code == 204
