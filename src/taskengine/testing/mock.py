"""MockTaskExecutor: a scripted executor for unit-testing chains without a model or hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskengine.datatypes import DataType
from taskengine.executor import ExecContext, get_prompt

if TYPE_CHECKING:
    from taskengine.chain import TaskDefinition

__all__ = ["MockTaskExecutor"]


@dataclass
class MockTaskExecutor:
    """Returns scripted outputs and records how it was called (the seed's MockTaskExecutor).

    Single values (`mock_output`, `mock_transition_value`, `mock_error`) answer every call;
    sequences answer call by call and fall back to the single values when exhausted.
    """

    mock_output: Any = None
    mock_output_type: DataType = DataType.STRING
    mock_transition_value: str = ""
    mock_error: BaseException | None = None
    mock_output_sequence: list[Any] = field(default_factory=list)
    mock_task_type_sequence: list[DataType] = field(default_factory=list)
    mock_transition_value_sequence: list[str] = field(default_factory=list)
    error_sequence: list[BaseException | None] = field(default_factory=list)

    called_with_task: TaskDefinition | None = None
    called_with_input: Any = None
    called_with_prompt: str = ""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    _count: int = 0

    async def task_exec(
        self, ctx: ExecContext, task: TaskDefinition, input: Any, input_type: DataType
    ) -> tuple[Any, DataType, str]:
        index = self._count
        self._count += 1
        self.called_with_task = task
        self.called_with_input = input
        self.called_with_prompt = get_prompt(input, input_type)
        self.calls.append((task.id, input))
        error = self.error_sequence[index] if index < len(self.error_sequence) else self.mock_error
        if error is not None:
            raise error
        output = (
            self.mock_output_sequence[index]
            if index < len(self.mock_output_sequence)
            else self.mock_output
        )
        output_type = (
            self.mock_task_type_sequence[index]
            if index < len(self.mock_task_type_sequence)
            else self.mock_output_type
        )
        transition = (
            self.mock_transition_value_sequence[index]
            if index < len(self.mock_transition_value_sequence)
            else self.mock_transition_value
        )
        return output, output_type, transition

    def call_count(self) -> int:
        """How many times task_exec was called."""
        return self._count

    def reset(self) -> None:
        """Clear scripted values and call tracking."""
        fresh = MockTaskExecutor()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
