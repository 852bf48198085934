"""A structural check of the chart's Go templates that needs no helm: every block closes, every
action's parentheses and quotes balance. It catches the usual editing slips here; the full
parse and render (`helm lint`, `helm template`) is test_helm.py's, in the e2e workflow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart import chart

ACTION = re.compile(r"\{\{-?\s*(?P<body>.*?)\s*-?\}\}", re.S)
COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.S)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
OPENERS = ("if", "range", "with", "define", "block")
TEMPLATES = sorted((chart.CHART / "templates").glob("*.*"))


def problems(text: str) -> list[str]:
    """What is structurally wrong with a template: unclosed or extra blocks, unbalanced
    parentheses or quotes inside an action."""
    text = COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep line numbers
    found: list[str] = []
    open_blocks: list[tuple[str, int]] = []
    for match in ACTION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        body = STRING.sub('""', match["body"])
        word = body.split(maxsplit=1)[0] if body.strip() else ""
        if word in OPENERS:
            open_blocks.append((word, line))
        elif word == "end" and not open_blocks:
            found.append(f"line {line}: end without a block")
        elif word == "end":
            open_blocks.pop()
        if body.count("(") != body.count(")"):
            found.append(f"line {line}: unbalanced parentheses")
        if '"' in body.replace('""', ""):
            found.append(f"line {line}: unbalanced quote")
    found += [f"line {line}: {word} never ends" for word, line in open_blocks]
    return found


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_is_well_formed(path: Path) -> None:
    assert problems(path.read_text()) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ if .a }}x{{ range .b }}{{ end }}", "line 1: if never ends"),
        ("{{ end }}", "line 1: end without a block"),
        ('{{ include "x" (dict "a" .b }}', "line 1: unbalanced parentheses"),
        ('{{ printf "%s }}', "line 1: unbalanced quote"),
    ],
)
def test_the_check_finds_what_it_is_for(text: str, problem: str) -> None:
    assert problem in problems(text)


def test_comments_and_strings_do_not_count() -> None:
    assert problems('{{- /* if ( " */}}{{ printf "(%s" "end" }}') == []
