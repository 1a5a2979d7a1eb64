"""``make docs``: rewrite the generated parts of docs/parameters.md from the code, the one place they are
written: the CLI synopsis (argparse) and the run form's tables (the settings classes). A test fails when
the checked-in page differs from what this writes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "parameters.md"
SECTIONS = ("cli synopsis", "parameters")


def generated(name: str) -> str:
    if name == "cli synopsis":
        from gated_training.cli.help_text import synopsis

        return "```\n" + synopsis() + "```\n"
    from gated_training.kubeflow import markdown_tables

    return markdown_tables()


def render(text: str) -> str:
    """``text`` with every generated section replaced by what the code says now."""
    for name in SECTIONS:
        pattern = re.compile(rf"(<!-- generated: {name} \(make docs\) -->\n)(.*?)(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{PAGE}: no generated section {name!r}")
        body = generated(name)
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(3), text)
    return text


def main() -> int:
    PAGE.write_text(render(PAGE.read_text()))
    print(PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
