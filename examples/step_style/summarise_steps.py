"""The step-style API: a `TaskExecutor` subclass whose `task_steps` run on the chain engine,
with retries, checkpoints and resume. A step with a `handle_<id>` method runs that method; a
step without one is answered by the model (here checked against an `output_schema`).

    OLLAMA_HOST=http://127.0.0.1:11434 python examples/step_style/summarise_steps.py
"""

import asyncio
import json
import sys

from taskengine import TaskExecutor


class Summarise(TaskExecutor):
    task_steps = (  # a tuple: the executor copies it into a list of its own
        {"id": "clean", "name": "Clean", "required_info": ["text"], "instruction": ""},
        {"id": "summary", "name": "Summarise", "required_info": ["text"],
         "instruction": "Summarise the text in one sentence."},
        {"id": "title", "name": "Title", "required_info": ["summary"],
         "instruction": "Give the summary a short title.",  # the schema is added to the prompt
         "output_schema": {"type": "object", "required": ["title"],
                           "properties": {"title": {"type": "string"}}}},
    )  # fmt: skip

    async def handle_clean(self, step_input: dict) -> dict:
        return {"text": " ".join(step_input["text"].split())}

    async def handle_summary(self, step_input: dict) -> dict:
        reply = await self.llm_call(
            instruction=step_input["instruction"], context=step_input["text"]
        )
        return {"summary": reply.strip()}


async def main(text: str) -> dict:
    executor = Summarise(llm_model="qwen2.5:7b", provider="ollama")
    result = await executor.execute({"text": text})
    # the result holds every step's value under the step id, plus .steps and .run_id
    return {"title": result["title"]["title"], "summary": result["summary"], "run": result.run_id}


if __name__ == "__main__":
    text = " ".join(sys.argv[1:]) or "  taskengine runs declarative LLM task chains,\n  durably.  "
    print(json.dumps(asyncio.run(main(text)), indent=2))
