"""`make lint`'s check of what ruff and import-linter do not see: every module of the package
says its job in a docstring, and a module longer than MAX_LINES says why it is long.

A long module is where a pipeline stage stops being visible in the folder tree; the stated
reason keeps it long on purpose, never by drift. Run: ``python -m devtools.module_check``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINES = 600
REASON = "long because"
PACKAGE = Path(__file__).resolve().parent.parent / "syncd"


def problems(package: Path = PACKAGE) -> list[str]:
    """One line per module breaking a rule, as ``path: problem``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text, str(path))) or ""
        name = path.relative_to(package.parent)
        if not docstring.strip():
            found.append(f"{name}:1: no module docstring saying the module's job")
        lines = text.count("\n")
        if lines > MAX_LINES and REASON not in docstring:
            found.append(f"{name}:1: {lines} lines (more than {MAX_LINES}) and the docstring does "
                         f"not say why (a sentence with {REASON!r}); split it, or say why not")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
