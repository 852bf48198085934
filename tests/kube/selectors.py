"""Kubernetes label and field selectors, as the API server parses and applies them.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a` (exists), `!a`
(absent), `a>3`, `a<3`; requirements joined by commas, all must hold. As in Kubernetes, `!=`
and `notin` also match objects without the label.

Field selectors: `path.to.field=value`, `==`, `!=`, joined by commas. The real server allows a
few fields per resource (metadata.name, metadata.namespace, status.phase for pods, ...); this
one allows any dotted path and compares the field's string form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_NOT_EXISTS = re.compile(rf"^!\s*({_KEY})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_NUMERIC = re.compile(rf"^({_KEY})\s*(>|<)\s*(-?\d+)$")
_EXISTS = re.compile(rf"^({_KEY})$")
_FIELD = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==|=|!=)\s*(.*)$")

Matcher = Callable[[Mapping[str, Any]], bool]


class SelectorError(ValueError):
    """The selector does not parse (the API server answers 400 BadRequest)."""


def split_requirements(selector: str) -> list[str]:
    """Split on the commas that are not inside `in (...)` value sets."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    if match := _NOT_EXISTS.match(text):
        key = match.group(1)
        return lambda labels: key not in labels
    if match := _SET.match(text):
        key, op, raw = match.groups()
        values = {value.strip() for value in raw.split(",") if value.strip()}
        if not values:
            raise SelectorError(f"{text!r}: a set needs at least one value")
        for value in values:
            if not re.fullmatch(_VALUE, value):
                raise SelectorError(f"{text!r}: invalid value {value!r}")
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.match(text):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if match := _NUMERIC.match(text):
        key, op, raw = match.groups()
        bound = int(raw)

        def numeric(labels: Mapping[str, str]) -> bool:
            try:
                actual = int(labels[key])
            except (KeyError, ValueError):
                return False
            return actual > bound if op == ">" else actual < bound

        return numeric
    if match := _EXISTS.match(text):
        key = match.group(1)
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {text!r}")


def label_selector(selector: str | None) -> Matcher:
    """A predicate over whole objects; an empty selector matches everything."""
    requirements = [_requirement(part) for part in split_requirements(selector or "")]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def _field_value(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    return None if node is None else str(node)


def field_selector(selector: str | None) -> Matcher:
    checks: list[tuple[str, bool, str]] = []
    for part in split_requirements(selector or ""):
        match = _FIELD.match(part)
        if not match:
            raise SelectorError(f"invalid field selector: {part!r}")
        path, op, value = match.groups()
        checks.append((path, op != "!=", value.strip()))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in checks)

    return matches


def selector(labels: str | None, fields: str | None) -> Matcher:
    by_labels, by_fields = label_selector(labels), field_selector(fields)
    return lambda obj: by_labels(obj) and by_fields(obj)
