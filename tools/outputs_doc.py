"""Write the column tables of ``docs/outputs.md`` from the declared schema (cnsvol.SCHEMAS).

    python tools/outputs_doc.py          # rewrite the tables in docs/outputs.md
    python tools/outputs_doc.py --check  # exit 1 when docs/outputs.md is not up to date

Each table's columns go between ``<!-- columns:NAME -->`` and ``<!-- /columns -->``; the rest
of the page is written by hand. ``tests/test_schema.py`` runs the check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "outputs.md"
_BLOCK = re.compile(r"(<!-- columns:(\w+) -->\n).*?(<!-- /columns -->)", re.S)


def column_table(name: str) -> str:
    """The markdown table of one output table's columns."""
    from cnsvol import SCHEMAS
    from cnsvol.agreement.schema import AGREEMENT_SCHEMAS

    lines = ["| column | dtype | unit | meaning |", "|---|---|---|---|"]
    for col in {**SCHEMAS, **AGREEMENT_SCHEMAS}[name].columns:
        meaning = col.description.replace("|", "\\|")
        lines.append(f"| `{col.name}` | {col.dtype} | {col.unit or ''} | {meaning} |")
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """``text`` with every column block rewritten from the schema."""
    return _BLOCK.sub(lambda m: m.group(1) + column_table(m.group(2)) + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print(f"{DOC} is not up to date with cnsvol.SCHEMAS: run python {__file__}")
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
