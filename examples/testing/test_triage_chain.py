"""Test a chain the way taskengine tests its own: a real HTTP model server with scripted replies.

Copy this file into your project and point CHAIN at your chain. `FakeLLMServer` speaks the
Ollama and OpenAI APIs on 127.0.0.1; each test scripts the replies and then asserts on the
path the run took, its output and what the model was sent.

    pytest examples/testing/test_triage_chain.py
"""

from pathlib import Path

import pytest

import taskengine
from taskengine.testing import FakeLLMServer

CHAIN = Path(__file__).resolve().parents[1] / "triage" / "triage.yaml"


@pytest.fixture
def llm(monkeypatch):
    """A fake model server; the chain's `provider: ollama` tasks talk to it through OLLAMA_HOST."""
    with FakeLLMServer() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


def path_of(result) -> list[str]:
    return [step.task_id for step in result.state]


def test_an_outage_pages_on_call(llm):
    llm.add_rule("outage", reply="True.")  # replies are trimmed, case-insensitive, "." tolerated
    result = taskengine.run_sync(CHAIN, "Checkout is down for everyone!")
    assert path_of(result) == ["urgent", "page_oncall"]
    assert result.output == "PAGE on-call: Checkout is down for everyone!"


def test_a_minor_issue_gets_a_drafted_reply(llm):
    llm.add_rule("outage", reply="false")
    llm.add_rule("Rate 1", reply="2")
    llm.add_rule("two-sentence reply", reply="Thanks! We will fix the typo today.")
    result = taskengine.run_sync(CHAIN, "There is a typo on the pricing page.")
    assert path_of(result) == ["urgent", "severity", "reply"]
    assert result.output == "Thanks! We will fix the typo today."
    sent = llm.requests[-1]
    assert sent.model == "qwen2.5:7b" and sent.temperature == 0.3
    assert "typo on the pricing page" in sent.messages[-1]["content"]


def test_a_severe_issue_pages_too(llm):
    llm.add_rule("outage", reply="false")
    llm.add_rule("Rate 1", reply="5")
    assert path_of(taskengine.run_sync(CHAIN, "I cannot log in at all")) == [
        "urgent",
        "severity",
        "page_oncall",
    ]


def test_an_unreadable_answer_is_retried_then_handed_to_a_person(llm):
    llm.add_rule("outage", reply="maybe?")  # not one of valid_conditions, every attempt
    result = taskengine.run_sync(CHAIN, "Hmm")
    assert path_of(result) == ["urgent", "unsure"]
    assert result.output.startswith("needs a human:")
    assert len(llm.requests_for("/api/chat")) == 3  # the first try and retry_on_failure: 2
