"""DynamoDB update and condition expressions, built with their placeholders: the adapters say what to
set, remove, add and require, and this writes `#name`/`:value` for each (no string handed up or down)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from whisperq.aws.job_items import serialize


class Update:
    """One UpdateItem's expressions: what it changes and the condition it needs."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._sets: list[str] = []
        self._removes: list[str] = []
        self._adds: list[str] = []
        self._conditions: list[str] = []

    # --- placeholders ---------------------------------------------------------------------
    def name(self, attribute: str) -> str:
        for placeholder, known in self._names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#n{len(self._names)}"
        self._names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = serialize(value)
        return placeholder

    # --- changes --------------------------------------------------------------------------
    def set(self, attributes: Mapping[str, Any]) -> Update:
        for attribute, value in attributes.items():
            self._sets.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def set_if_absent(self, attributes: Mapping[str, Any]) -> Update:
        for attribute, value in attributes.items():
            name = self.name(attribute)
            self._sets.append(f"{name} = if_not_exists({name}, {self.value(value)})")
        return self

    def set_from(self, attribute: str, source: str, default: Any) -> Update:
        """attribute = the value of `source`, or `default` when the item has none."""
        self._sets.append(f"{self.name(attribute)} = if_not_exists({self.name(source)}, {self.value(default)})")
        return self

    def increment(self, attribute: str) -> Update:
        """attribute = attribute + 1, starting from 0."""
        name = self.name(attribute)
        self._sets.append(f"{name} = if_not_exists({name}, {self.value(0)}) + {self.value(1)}")
        return self

    def remove(self, attributes: Iterable[str]) -> Update:
        self._removes.extend(self.name(attribute) for attribute in attributes)
        return self

    def add(self, attributes: Mapping[str, int | float]) -> Update:
        for attribute, amount in attributes.items():
            self._adds.append(f"{self.name(attribute)} {self.value(amount)}")
        return self

    # --- conditions -----------------------------------------------------------------------
    def require(self, condition: str) -> Update:
        self._conditions.append(condition)
        return self

    def exists(self, attribute: str) -> str:
        return f"attribute_exists({self.name(attribute)})"

    def absent(self, attribute: str) -> str:
        return f"attribute_not_exists({self.name(attribute)})"

    def equals(self, attribute: str, value: Any) -> str:
        return f"{self.name(attribute)} = {self.value(value)}"

    def below(self, attribute: str, value: Any) -> str:
        return f"{self.name(attribute)} < {self.value(value)}"

    def same(self, attribute: str, other: str) -> str:
        return f"{self.name(attribute)} = {self.name(other)}"

    def one_of(self, attribute: str, values: Iterable[Any]) -> str:
        return f"{self.name(attribute)} IN ({', '.join(self.value(v) for v in values)})"

    @staticmethod
    def either(*conditions: str) -> str:
        return "(" + " OR ".join(conditions) + ")"

    @staticmethod
    def both(*conditions: str) -> str:
        return "(" + " AND ".join(conditions) + ")"

    # --- the request ----------------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        """The UpdateItem arguments: UpdateExpression, ConditionExpression and their placeholders."""
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._removes:
            clauses.append("REMOVE " + ", ".join(self._removes))
        if self._adds:
            clauses.append("ADD " + ", ".join(self._adds))
        request: dict[str, Any] = {"UpdateExpression": " ".join(clauses), "ExpressionAttributeNames": self._names}
        if self._values:
            request["ExpressionAttributeValues"] = self._values
        if self._conditions:
            request["ConditionExpression"] = " AND ".join(self._conditions)
        return request
