"""`make lint`'s check of what ruff and import-linter do not see: every module of the package
says its job in a docstring, a module longer than MAX_LINES says why it is long, and the module
table of docs/architecture.md names every module and nothing that is gone.

A long module is where a pipeline stage stops being visible in the folder tree; the stated
reason keeps it long on purpose, never by drift. Run: ``python -m devtools.module_check``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

MAX_LINES = 600
REASON = "long because"
PACKAGE = Path(__file__).resolve().parent.parent / "syncd"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


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


def table_problems(package: Path = PACKAGE, doc: Path = ARCHITECTURE) -> list[str]:
    """Modules missing from the doc's module table, and table rows naming no file."""
    rows = set(re.findall(r"^\| `(syncd/[^`]+)`", doc.read_text(encoding="utf-8"), re.MULTILINE))
    files = {str(p.relative_to(package.parent)) for p in package.rglob("*")
             if p.suffix in {".py", ".c"} and "__pycache__" not in p.parts}
    required = {f for f in files if not f.endswith("/__init__.py") or f.count("/") == 1}
    name = doc.relative_to(package.parent)
    return ([f"{name}: the module table does not name {f}" for f in sorted(required - rows)]
            + [f"{name}: the module table names {f}, which does not exist" for f in sorted(rows - files)])


def main() -> int:
    found = problems() + table_problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
