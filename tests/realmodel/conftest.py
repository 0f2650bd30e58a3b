"""The real-model tier: llama.cpp's `llama-server` with SmolLM2-135M-Instruct, built by
`scripts/local-model.sh build` (cached). One server per test session, started here and owned by
the session (or an already running one from TASKENGINE_TEST_LLM_URL, e.g. `…/v1`).

Without the built server and model the tests skip with a reason, like PostgreSQL; with
TASKENGINE_REQUIRE_SERVICES=1 (CI) they fail. A 135M model cannot answer reliably, so these
tests assert types, flow and wire behaviour, never exact text.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-model.sh"
MODEL = "smollm2-135m"
#: SmolLM2-135M's hidden size: the length of its (mean-pooled) embedding vectors.
EMBED_DIM = 576
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LocalModel:
    """A running llama-server: its OpenAI base URL (…/v1) and the model name it answers to."""

    base_url: str
    model: str = MODEL

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def provider_settings(self, name: str = "local") -> dict[str, object]:
        """A `providers:` entry for taskengine settings pointing at this server."""
        return {"name": name, "type": "llamacpp", "base_url": self.base_url,
                "models": [self.model], "timeout": 60}  # fmt: skip


def _unavailable(message: str) -> None:
    hint = "build it once with `scripts/local-model.sh build` (several minutes, cached)"
    if os.environ.get("TASKENGINE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"TASKENGINE_REQUIRE_SERVICES=1 but {message}; {hint}")
    pytest.skip(f"{message}; {hint}")


def _healthy(root: str) -> bool:
    try:
        with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _built() -> bool:
    out = subprocess.run(["bash", str(SCRIPT), "paths"], capture_output=True, text=True, check=True)
    paths = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return all(Path(paths[k]).is_file() for k in ("bin", "model", "template"))


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    """The session's llama-server (started once, stopped at the end)."""
    given = os.environ.get("TASKENGINE_TEST_LLM_URL")
    if given:
        model = LocalModel(given.rstrip("/"))
        if not _healthy(model.root):
            _unavailable(f"no healthy llama-server at TASKENGINE_TEST_LLM_URL={given}")
        yield model
        return
    if not SCRIPT.is_file() or not _built():
        _unavailable("the local model (llama-server + SmolLM2-135M) is not built")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "serve", str(port)], stdout=sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    model = LocalModel(f"http://127.0.0.1:{port}/v1")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(model.root):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                _unavailable(f"llama-server did not become healthy on port {port}:\n{tail}")
            time.sleep(0.1)
        yield model
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
async def make_env(local_model: LocalModel):
    """`make_env(hooks=None)`: a SimpleEnv whose only provider is the local model."""
    from taskengine.engine import SimpleEnv
    from taskengine.providers.config import ProviderConfig
    from taskengine.providers.registry import ProviderRegistry
    from taskengine.providers.resolver import ModelResolver

    registries = []

    def make(hooks: object = None) -> SimpleEnv:
        config = ProviderConfig(name="local", type="llamacpp",
                                base_url=local_model.base_url, timeout=60)  # fmt: skip
        registry = ProviderRegistry.from_settings(
            [config], {}, default_provider="local", default_model=local_model.model,
            default_embed_model=local_model.model,
        )  # fmt: skip
        registries.append(registry)
        return SimpleEnv(resolver=ModelResolver(registry), hooks=hooks, retry_base=0.001)

    yield make
    for registry in registries:
        await registry.aclose()
