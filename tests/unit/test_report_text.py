"""Markdown for the KFP UI's renderer (markdown-to-jsx 7.7.17, raw HTML off), checked with that
renderer: hostile text stays text, identifiers stay code, numbers are rounded, nothing is a repr."""

from __future__ import annotations

import pytest

from gated_training.reports.escaping import markdown_text
from gated_training.reports.markdown import code, number, table, value
from tests.kfp_markdown import kfp_elements, render_as_kfp_ui


@pytest.mark.parametrize(
    "hostile",
    [
        "http://evil.example/approve",
        "www.evil.example",
        "ops@evil.example",
        "min_roc_auc",
        "*bold* _it_ `code`",
        "<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "![x](http://evil.example/x.png)",
        "a | b",
        "# heading",
        "line\nbreak - item",
    ],
)
def test_escaped_text_renders_as_the_characters_it_holds_in_the_kfp_ui(hostile):
    html = render_as_kfp_ui(f"before {markdown_text(hostile)} after\n")
    parsed = kfp_elements(f"before {markdown_text(hostile)} after\n")
    assert not {tag for tag, _ in parsed.tags} & {"a", "img", "script", "em", "strong", "code", "h1", "li"}, html
    assert "".join(parsed.text).strip() == f"before {hostile} after".replace("\n", " ")


@pytest.mark.parametrize(
    "name", ["min_roc_auc", "expect_column_values_to_be_between[credit_amount]", "a`b", "``x", "pipe|name"]
)
def test_code_spans_hold_any_name_even_in_a_table(name):
    parsed = kfp_elements("\n".join(table(["check", "value"], [[code(name), value(0.123456789)]])))
    assert parsed.tables == [[["check", "value"], [name, "0.1235"]]]
    assert "em" not in {tag for tag, _ in parsed.tags}


def test_numbers_and_values_never_print_a_python_repr():
    assert [number(0.123456789), number(12345.678), number(3), number(float("nan")), number(float("inf"))] == [
        "0.1235",
        "1.235e+04",
        "3",
        "not a number",
        "infinite",
    ]
    assert value(None) == "—" and value(True) == "yes"
    assert value({"min_value": 0, "max_value": 2.123456}) == "min\\_value 0, max\\_value 2.123"
    assert value(["a", None, 1.0]) == "a, —, 1"
    assert "None" not in value({"x": None}) and "{'" not in value({"x": {"y": 1}})
