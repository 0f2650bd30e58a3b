"""The step-style API (seed 000): a `TaskExecutor` with `task_steps` and `handle_<step_id>` methods.

A step-style executor is a task executor like any other: `execute()` compiles `task_steps` into
a linear chain (one task per step, handler `step:<id>`) and runs it through `SimpleEnv`, so
steps get retries with exponential backoff, timeouts, a checkpoint after every step, resume
after a crash and run events, exactly as chain files do::

    executor = TaskExecutor(llm_model="qwen2.5:7b", store=True)
    executor.task_steps = [{"id": "summary", "name": "Summarise", "required_info": ["text"],
                            "instruction": "Summarise the text in one sentence."}]
    result = await executor.execute({"text": "..."})
    result["summary"]          # the accumulated data; result.steps["summary"] per step

Data flow: the run's data starts as `input_data`; each step gets the data plus its
`instruction` and returns a dict that is merged into the data. A step's own result is kept
apart too (`StepResult.steps`), so steps that reuse a key (`{"result": ...}`) lose nothing.
Inside the engine each step's output is the envelope `{"data": {...}, "steps": {id: result}}`.
"""

from taskengine.step_defs import StepResult, TaskStep
from taskengine.steps.task_executor import TaskExecutor

__all__ = ["StepResult", "TaskExecutor", "TaskStep"]
