"""The provider protocol, local token estimates, and keeping heavy clients out of import time."""

from __future__ import annotations

import subprocess
import sys

from taskengine.datatypes import FunctionCall, Message, ToolCall
from taskengine.providers import ModelProvider, estimate_tokens
from taskengine.providers.base import StreamState
from taskengine.providers.ollama import OllamaProvider
from taskengine.providers.openai_compat import OpenAICompatProvider


def test_both_clients_satisfy_the_protocol():
    assert isinstance(OpenAICompatProvider("a", base_url="http://x/v1"), ModelProvider)
    assert isinstance(OllamaProvider("b"), ModelProvider)


def test_token_estimate_is_deterministic_and_grows_with_text():
    assert estimate_tokens("") == 0
    assert estimate_tokens(None) == 0
    short = estimate_tokens("Hello, world!")
    assert short == 4  # two words, two punctuation marks
    assert estimate_tokens("internationalization") == 5  # 20 characters / 4
    long = estimate_tokens("Hello, world! " * 50)
    assert long == 50 * short


def test_token_estimate_for_messages_counts_overhead_and_tool_calls():
    plain = [Message(role="user", content="hi there")]
    assert estimate_tokens(plain) == 4 + 2
    call = ToolCall(id="1", function=FunctionCall(name="lookup", arguments='{"q": "x"}'))
    with_call = Message(role="assistant", content="", call_tools=[call])
    assert estimate_tokens(with_call) > estimate_tokens(Message(role="assistant", content=""))
    assert OllamaProvider("o").count_tokens(plain) == estimate_tokens(plain)


def test_stream_state_assembles_tool_call_fragments():
    state = StreamState()
    state.add_call(0, id="c1", name="f", arguments='{"a"')
    state.add_call(1, id="c2", name="g", arguments="{}")
    state.add_call(0, arguments=": 1}")
    calls = state.tool_calls()
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("c1", "f", '{"a": 1}'),
        ("c2", "g", "{}"),
    ]


def test_importing_the_provider_layer_does_not_load_http_clients():
    code = (
        "import sys; import taskengine.providers as p; import taskengine.providers.resolver; "
        "import taskengine.providers.registry; p.ProviderRegistry; p.ModelResolver; "
        "print(sorted(m for m in ('openai', 'aiohttp', 'httpx', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
