"""Store examples/openai_endpoint/assistant.yaml in a running `taskengine serve`, then call it
with the official `openai` SDK, once whole and once streamed.

    TASKENGINE_API_TOKEN=s3cret OLLAMA_HOST=http://127.0.0.1:11434 taskengine serve --port 8080
    TASKENGINE_URL=http://127.0.0.1:8080 TASKENGINE_API_TOKEN=s3cret \
      python examples/openai_endpoint/client.py "What is a haiku?"
"""

import os
import sys
from pathlib import Path

import httpx
import yaml
from openai import OpenAI

BASE = os.environ.get("TASKENGINE_URL", "http://127.0.0.1:8080")
TOKEN = os.environ.get("TASKENGINE_API_TOKEN", "")
CHAIN = yaml.safe_load((Path(__file__).parent / "assistant.yaml").read_text())


def store_chain() -> None:
    """PUT replaces the chain if it is already stored, so the script can run twice."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    reply = httpx.put(f"{BASE}/taskchains/{CHAIN['id']}", json=CHAIN, headers=headers)
    if reply.status_code == 404:
        reply = httpx.post(f"{BASE}/taskchains", json=CHAIN, headers=headers)
    reply.raise_for_status()


def main(question: str) -> None:
    store_chain()
    client = OpenAI(base_url=f"{BASE}/openai/{CHAIN['id']}/v1", api_key=TOKEN or "unused")
    messages = [{"role": "user", "content": question}]
    answer = client.chat.completions.create(model=CHAIN["id"], messages=messages)
    print(answer.choices[0].message.content)
    for chunk in client.chat.completions.create(model=CHAIN["id"], messages=messages, stream=True):
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "What is a haiku?")
