"""What is wrong with a config, in words: :func:`validate` turns a composed config into a
:class:`pipeline.config_model.Config`, or raises one :class:`CvmError` that lists every problem,
each naming the dotted key, the value given and what is allowed: a key missing from a section or
one the section does not have, a value of the wrong type or out of range, a broken rule (a
group's rules run once its keys are valid). The words come from the keys' types
(:mod:`models.settings`)."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MinLen
from pydantic import TypeAdapter, ValidationError

from models.settings import NOT_CONFIG, RULES_ERROR, Shape
from pipeline import path_check
from pipeline.config_model import Config
from pipeline.errors import CvmError

_ADAPTER = TypeAdapter(Config)


def validate(tree: Any, source: str = "config", root: Path | None = None) -> Config:
    """The config ``tree`` (plain data) as a :class:`Config`; a :class:`CvmError` that starts
    with ``source`` and lists every problem. With the project folder ``root``, the outputs'
    paths are checked too (:mod:`pipeline.path_check`)."""
    config, found = _check(tree)
    if config is not None and root is not None:
        found = path_check.problems(config, root)
    if len(found) == 1:
        raise CvmError(f"{source}: {found[0]}")
    if found:
        raise CvmError(f"{source}: {len(found)} config problems:\n  " + "\n  ".join(found))
    return config


def problems(tree: Any) -> list[str]:
    """Every problem of ``tree``: keys missing or not in the config first, then types and
    ranges, then the rules between keys."""
    return _check(tree)[1]


def _check(tree: Any) -> tuple[Config | None, list[str]]:
    keys = _key_problems(Config, tree, "")
    try:
        return _ADAPTER.validate_python(tree), keys
    except ValidationError as err:
        values, rules = _messages(err, Config, tree)
    seen = {m.split(" ", 1)[0] for m in keys}
    return None, keys + [m for m in values if m.split(" ", 1)[0] not in seen] + rules


def _key_problems(annotation: Any, value: Any, key: str) -> list[str]:
    """Keys a section lacks (every key of the config is written out in ``params.yaml``) and
    keys it does not have, recursively."""
    section = _section(annotation, value)
    if section is None or not isinstance(value, Mapping):
        return []
    where = key or "the config"
    config_keys = _config_keys(section)
    found = [
        f"{_join(key, name)} is not a config key; {where} has the keys {', '.join(config_keys)}"
        for name in value
        if name not in config_keys
    ]
    for name, spec in config_keys.items():
        if name in value:
            found += _key_problems(spec, value[name], _join(key, name))
        else:
            found.append(f"{_join(key, name)} is missing; expected {_missing(spec)}")
    return found


def explain(err: ValidationError, root: type, values: Any) -> list[str]:
    """The problems of building the settings ``root`` from ``values`` (a mapping), in words:
    for settings given other than as a config file (command-line options)."""
    found, rules = _messages(err, root, values)
    return (
        found
        + rules
        + [
            f"{e['loc'][-1]} is not a setting; expected some of {', '.join(_config_keys(root))}"
            for e in err.errors()
            if e["type"] == "unexpected_keyword_argument"
        ]
    )


def _messages(err: ValidationError, root: type, tree: Any) -> tuple[list[str], list[str]]:
    values: dict[str, str] = {}
    rules: list[str] = []
    for error in err.errors():
        kind = error["type"]
        if kind == RULES_ERROR:
            rules += error["ctx"]["problems"]
            continue
        if kind in ("missing", "unexpected_keyword_argument", "extra_forbidden"):
            continue  # named by _key_problems
        key, annotation, value = _walk(root, tree, error["loc"])
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            options = _tags(annotation)
            given = value.get("name") if isinstance(value, Mapping) else None
            values.setdefault(key, f"{key}.name is {given!r}; expected one of {', '.join(options)}")
            continue
        inner, nullable = _optional(annotation)
        null = " or null" if nullable else ""
        values.setdefault(
            key, f"{key or 'the config'} is {value!r}; expected {_expected(inner)}{null}"
        )
    return list(values.values()), rules


def _walk(root: type, tree: Any, loc: tuple) -> tuple[str, Any, Any]:
    """Follow an error's location through the types from ``root``: the dotted key of the
    innermost config key it names, that key's type and the value given there."""
    annotation, value, key = root, tree, ""
    for step in loc:
        inner, _ = _optional(annotation)
        section = _section(inner, value)
        if section is not None and isinstance(step, str):
            if inner is not section and step in _tags(inner):  # a tagged union's member
                annotation = section
                continue
            types_ = _types(section)
            if step not in types_ or not isinstance(value, Mapping):
                break
            annotation, value, key = types_[step], value.get(step), _join(key, step)
            continue
        base = _base(inner)
        if get_origin(base) is dict and isinstance(step, str) and _is_section(get_args(base)[1]):
            annotation, value, key = get_args(base)[1], value.get(step), _join(key, step)
            continue
        break
    return key, annotation, value


# --- the types, in words --------------------------------------------------------------------


def _expected(annotation: Any) -> str:
    """What a key of type ``annotation`` accepts, in words."""
    base, metadata = _base(annotation), _metadata(annotation)
    described = [m for m in metadata if hasattr(m, "expected")]
    if described:
        return described[0].expected()
    if _is_section(base):
        return f"a section with keys {', '.join(_config_keys(base))}"
    if base is bool:
        return "true or false"
    if get_origin(base) is Literal:
        return f"one of {', '.join(get_args(base))}"
    if get_origin(base) is tuple:
        shape = next((m for m in metadata if isinstance(m, Shape)), Shape())
        non_empty = any(isinstance(m, MinLen) and m.min_length > 0 for m in metadata)
        words = [
            "a non-empty list" if non_empty else "a list",
            *(["strictly increasing"] if shape.increasing else []),
            *(["without repeats"] if shape.unique else []),
        ]
        item, nullable = _optional(get_args(base)[0])
        return f"{', '.join(words)}, each {_expected(item)}{' or null' if nullable else ''}"
    if _is_union(base):
        options = [_expected(a) for a in get_args(base)]
        return " or ".join(options)
    return getattr(base, "__name__", str(base))


def _missing(annotation: Any) -> str:
    inner, nullable = _optional(annotation)
    if _is_section(_base(inner)) or _tags(inner):
        return "a section or null" if nullable else "a section"
    return _expected(inner) + (" or null" if nullable else "")


def _section(annotation: Any, value: Any = None) -> type | None:
    """The section type of ``annotation``: a settings dataclass, or the member of a tagged
    union that ``value`` names."""
    inner, _ = _optional(annotation)
    base = _base(inner)
    if _is_section(base):
        return base
    tags = _tags(inner)
    if tags and isinstance(value, Mapping):
        return tags.get(value.get("name"))
    return None


def _tags(annotation: Any) -> dict[str, type]:
    """The members of a tagged union by tag (``{}`` for another type)."""
    base = _base(annotation)
    if not _is_union(base):
        return {}
    members = [a for a in get_args(base) if _is_section(a)]
    if not members or len(members) != len(get_args(base)):
        return {}
    tags = {}
    for member in members:
        name = _types(member).get("name")
        if name is None or get_origin(_base(name)) is not Literal:
            return {}
        tags |= {tag: member for tag in get_args(_base(name))}
    return tags


def _types(section: type) -> dict[str, Any]:
    """A section's keys and their types, as pydantic resolved them (the modules postpone their
    annotations, so :func:`dataclasses.fields` holds text)."""
    out = {}
    for name, info in section.__pydantic_fields__.items():
        annotation = info.annotation
        out[name] = Annotated[(annotation, *info.metadata)] if info.metadata else annotation
    return out


def _config_keys(section: type) -> dict[str, Any]:
    return {k: t for k, t in _types(section).items() if NOT_CONFIG not in _metadata(t)}


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and is_dataclass(annotation)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; anything else → ``(it, False)``."""
    if get_origin(annotation) is Annotated:
        inner, nullable = _optional(get_args(annotation)[0])
        if nullable:
            return Annotated[(inner, *annotation.__metadata__)], True
        return annotation, False
    if _is_union(annotation) and type(None) in get_args(annotation):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True  # noqa: UP007
    return annotation, False


def _base(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _metadata(annotation: Any) -> tuple:
    return annotation.__metadata__ if get_origin(annotation) is Annotated else ()


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else str(name)
