"""The building blocks of the scenario models: field types (durations, strict numbers) and
the TOML table base that refuses unknown keys and runs its cross-field rules."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from . import rules
from .durations import parse_duration
from .errors import show


class DurationMark:
    """Marks a field as a duration (written back as "5ms" by scenario_to_toml)."""


#: The longest duration a scenario may give (about 31.7 years): past it, sums of durations
#: (a pod's CPU backlog, a deadline) could overflow to infinity.
MAX_DURATION_S = 1e9


def _duration_type(minimum: float, inclusive: bool) -> Any:
    def check(value: object) -> float:
        seconds = parse_duration(value)
        if seconds < minimum or (seconds == minimum and not inclusive):
            raise ValueError(f"must be {'>=' if inclusive else '>'} {minimum:g}, got {show(value)}")
        if seconds > MAX_DURATION_S:
            raise ValueError(f"must be at most {MAX_DURATION_S:g} s (about 31 years), got {show(value)}")
        return seconds

    return Annotated[float, BeforeValidator(check), DurationMark()]


Duration = _duration_type(0.0, inclusive=True)  # seconds, >= 0 (0 often means off)
PositiveDuration = _duration_type(0.0, inclusive=False)  # seconds, > 0
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
FileName = Annotated[str, Strict(), AfterValidator(rules.check_file_name)]


def _d(text: str) -> float:
    return parse_duration(text)


def _problems(problems: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """Errors at sub-paths of the model that raises this (see translate_errors)."""
    return PydanticCustomError("at_paths", "{problems}", {"problems": problems})


class _Table(BaseModel):
    """A TOML table: unknown keys refused, frozen; its cross-field `RULES` (rules.py) run after its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    RULES: ClassVar[tuple[rules.Rule, ...]] = ()

    @model_validator(mode="after")
    def _rules(self) -> Any:
        """Every rule of the table, all their problems at once."""
        problems = [problem for rule in self.RULES for problem in rule(self)]
        if problems:
            raise _problems(problems)
        return self
