"""What every request model shares: strict types, no unknown fields, text that is Unicode, and one way
of saying what is wrong with a request. The models themselves sit beside the facts they check
(core/options.py, api_handler/contract.py); the API validates with them and its OpenAPI document is
generated from them, so that a limit is written once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from whisperq.core.errors import InvalidRequest

T = TypeVar("T")


def _unicode(text: str) -> str:
    """Refuse what JSON parses but no store takes: a lone surrogate ("\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text (it holds a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


# What to say when a field is refused, by its name as sent: filled from each model's `refusals`.
_REFUSALS: dict[str, str] = {}


def refuse(**sentences: str) -> None:
    """What to say when a route's parameter (not a model's field) is refused, by its name."""
    _REFUSALS.update(sentences)


class Model(BaseModel):
    """A request's shape: JSON types as sent (no "5" for 5, no 1 for true), unknown fields refused.

    `refusals` says, per field, what a valid value is ("must be true or false"): the sentence a client
    reads for any type or range error of that field, instead of the validator's own words."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, frozen=True)
    refusals: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REFUSALS.update(cls.refusals)

    @classmethod
    def parse(cls, raw: object, at: tuple[str, ...] = ()) -> Self:
        """The model of `raw` (a model already is one); InvalidRequest saying what is wrong, its fields
        named from `at` (("options",): options.beamSize)."""
        if isinstance(raw, cls):
            return raw
        return validated(cls.model_validate, raw, at)

    def sent(self) -> dict[str, Any]:
        """The fields the client sent, under the names it used (what an Idempotency-Key compares)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def validated(validate: Callable[[object], T], raw: object, at: tuple[str, ...] = ()) -> T:
    """`validate(raw)`, its ValidationError said as an InvalidRequest (fields named from `at`)."""
    try:
        return validate(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": (*at, *error["loc"])} for error in exc.errors(include_url=False)]
        raise InvalidRequest(explain(errors)) from None


# Where a location names a branch of a union (the tag), not a field.
_BRANCHES = frozenset({"upload-form", "from-source", "function-after", "function-plain"})


def _where(loc: Sequence[int | str]) -> list[str]:
    return [str(part) for part in loc if part not in _BRANCHES]


def _named(where: list[str]) -> tuple[str, str]:
    """(how the error names the field, the field's own name): options.beamSize, Idempotency-Key header."""
    if where[:1] == ["header"] and len(where) > 1:
        return f"{where[1].title()} header", where[1]
    if where[:1] in (["body"], ["query"], ["path"]):
        where = where[1:]
    return ".".join(where), where[-1] if where else ""


def explain(errors: Iterable[Mapping[str, Any]]) -> str:
    """One sentence per error, naming the field by its path (options.beamSize, limit, the
    Idempotency-Key header) and saying what it must be: what a person fixes the request by."""
    said: list[str] = []
    for error in errors:
        where = _where(error.get("loc", ()))
        kind = str(error.get("type", ""))
        name, field = _named(where)
        if where[:1] == ["body"]:
            where = where[1:]
        if kind == "extra_forbidden":
            parent = where[:-1]
            what = "option" if parent[-1:] == ["options"] else "field"
            said.append(f"unknown {what} {field!r}" + (f" in {'.'.join(parent)}" if parent[:-1] else ""))
        elif kind == "missing" and not name:
            said.append("the request needs a JSON body")
        elif kind == "missing":
            said.append(f"{name} is required")
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            said.append(f"{name} must be a JSON object" if name else "the request body must be a JSON object")
        elif kind != "value_error" and field in _REFUSALS:
            said.append(f"{name} {_REFUSALS[field]}")
        elif kind == "value_error":  # a validator's own words, which go on from the field's name
            said.append(f"{name or 'the request body'} {str(error.get('msg')).removeprefix('Value error, ')}")
        else:
            said.append(f"{name or 'the request body'}: {error.get('msg', 'is invalid')}")
    return "; ".join(dict.fromkeys(said)) or "the request is invalid"


# How deep a request's JSON may nest: the API's bodies are three levels deep.
MAX_JSON_DEPTH = 16


def strict_json(raw: str) -> Any:
    """The request body's JSON (what the routes' models then check), or InvalidRequest saying why not:
    never a 500 for a body nested a million deep or a number no store keeps."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid UTF-8 JSON: {exc}") from exc
    _check_depth(body, 0)
    return body


def _no_constant(name: str) -> Any:
    raise InvalidRequest(f"the request body holds {name}, which JSON does not have")


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        _check_depth(child, depth + 1)
