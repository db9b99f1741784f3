"""The base of every settings model and the value types their keys use.

Each config group is a pydantic dataclass (:func:`settings`): frozen, unknown keys refused, each
key typed with one of the types below, and the rules between a group's keys as its model
validator (:func:`model_rules`). The pipeline validates a composed config into these models once
(:mod:`pipeline.config_model`) and hands the typed values to pure code, which does not check
them again.

How values are read:

- an integer is a whole number written as one: booleans and floats, even ``2.0``, are refused:
  a count written as a float is more likely a slip than a choice;
- a number accepts integers (``learning_rate: 1``), never booleans, and must be finite;
- a date is ISO text ``YYYY-MM-DD`` (an unquoted YAML date is accepted too);
- ``null`` only where a key's type says so (``X | None``).

A type's :class:`Expect` says in words what it accepts; :mod:`pipeline.config_model` builds the
error messages from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

import pydantic.dataclasses
from annotated_types import MinLen
from pydantic import (
    AfterValidator,
    ConfigDict,
    PlainValidator,
    Strict,
    model_validator,
)
from pydantic_core import PydanticCustomError

RULES_ERROR = "cvm_rules"  # the error type of a broken rule between keys


def settings(cls: type) -> type:
    """A config group as a frozen pydantic dataclass: its keys typed and checked when it is
    built (by keywords, positions, :func:`dataclasses.replace` or from a mapping), a key it
    does not have refused; it stays a dataclass (``asdict``, ``replace``)."""
    return pydantic.dataclasses.dataclass(cls, frozen=True, config=ConfigDict(extra="forbid"))


@dataclass(frozen=True)
class Expect:
    """What a type accepts, in words (``"a column name"``), for the messages."""

    text: str

    def expected(self) -> str:
        return self.text


@dataclass(frozen=True)
class NotConfig:
    """A field code sets, not the config (a progress bar, per-parameter priors): refused as a
    config key."""


NOT_CONFIG = NotConfig()


@dataclass(frozen=True)
class Shape:
    """The rules of a list beyond its items: strictly increasing, no item twice."""

    increasing: bool = False
    unique: bool = False


def _check_shape(shape: Shape) -> Callable[[tuple], tuple]:
    def check(values: tuple) -> tuple:
        pairs = zip(values, values[1:], strict=False)
        if shape.increasing and any(a >= b for a, b in pairs):
            raise ValueError("not strictly increasing")
        if shape.unique and len(set(values)) != len(values):
            raise ValueError("repeated items")
        return values

    return check


def listing(item: Any, min_len: int = 0, increasing: bool = False, unique: bool = False) -> Any:
    """A list (held as a tuple) whose items are ``item``: at least ``min_len`` long, strictly
    ``increasing``, ``unique``."""
    shape = Shape(increasing, unique)
    return Annotated[tuple[item, ...], MinLen(min_len), shape, AfterValidator(_check_shape(shape))]


def to_date(value: Any) -> date | None:
    """``value`` as a date (ISO ``YYYY-MM-DD`` text or a date), or ``None`` when it is not one."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _date(value: Any) -> date:
    day = to_date(value)
    if day is None:
        raise ValueError("not a date")
    return day


def model_rules(method: Callable[[Any], Sequence[str]]) -> Any:
    """The rules between a group's keys: ``method`` returns the broken ones, each a whole
    message naming the keys; they run once every key of the group is valid."""

    def validate(self: Any) -> Any:
        problems = list(method(self))
        if problems:
            raise PydanticCustomError(RULES_ERROR, "{problems}", {"problems": problems})
        return self

    validate.__name__ = method.__name__
    return model_validator(mode="after")(validate)


@dataclass(frozen=True)
class Range:
    """A whole number (``integer``) or a finite number within ``gt``, ``ge``, ``lt``, ``le``;
    ``but_not`` is one value of the range left out. Values pass as given: an integer where a
    number is expected stays an integer (the settings a model saves keep their bytes)."""

    integer: bool
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    but_not: int | None = None

    def accepts(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int if self.integer else int | float):
            return False
        return (
            math.isfinite(v)
            and (self.gt is None or v > self.gt)
            and (self.ge is None or v >= self.ge)
            and (self.lt is None or v < self.lt)
            and (self.le is None or v <= self.le)
            and v != self.but_not
        )

    def expected(self) -> str:
        low = f"({self.gt}" if self.gt is not None else "" if self.ge is None else f"[{self.ge}"
        high = f"{self.lt})" if self.lt is not None else "" if self.le is None else f"{self.le}]"
        if low and high:
            limits = f" in {low}, {high}"
        elif low:
            limits = f" {'>' if low[0] == '(' else '>='} {low[1:]}"
        elif high:
            limits = f" {'<' if high[-1] == ')' else '<='} {high[:-1]}"
        else:
            limits = ""
        other = f" other than {self.but_not}" if self.but_not is not None else ""
        return f"{'an integer' if self.integer else 'a number'}{limits}{other}"


def _ranged(kind: type, **bounds: float) -> Any:
    limits = Range(kind is int, **bounds)

    def check(value: Any) -> Any:
        if not limits.accepts(value):
            raise ValueError(limits.expected())
        return value

    return Annotated[kind, PlainValidator(check), limits]


def integer(**bounds: float) -> Any:
    """A whole number within ``gt``, ``ge``, ``lt``, ``le`` (``but_not``: one value left out)."""
    return _ranged(int, **bounds)


def number(**bounds: float) -> Any:
    """A finite number (an integer is fine) within ``gt``, ``ge``, ``lt``, ``le``."""
    return _ranged(float, **bounds)


def text(what: str = "a non-empty text", pattern: str | None = None) -> Any:
    """Non-empty text described as ``what``, matching ``pattern`` (case-insensitive) if given."""

    def check(value: str) -> str:
        if pattern is not None and re.fullmatch(pattern, value, re.IGNORECASE) is None:
            raise ValueError(f"does not match {pattern}")
        return value

    return Annotated[str, Strict(), MinLen(1), Expect(what), AfterValidator(check)]


Count = integer(ge=0)
Positive = integer(gt=0)
AtLeastOne = integer(ge=1)
Seed = integer(ge=0, le=2**31 - 1)  # LightGBM's seed is a C int
Number = number()
NonNegative = number(ge=0)
PositiveNumber = number(gt=0)
Share = number(ge=0, le=1)
OpenShare = number(gt=0, lt=1)
Flag = Annotated[bool, Strict()]
Text = text()
Column = text("a column name")
PathText = text("a path")
Day = Annotated[date, PlainValidator(_date), Expect("a date YYYY-MM-DD")]
