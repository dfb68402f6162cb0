"""`make lint`'s module check: docstrings everywhere, long modules say why."""

from pathlib import Path

from devtools.module_check import MAX_LINES, problems, table_problems


def _module(root: Path, name: str, docstring: str, lines: int) -> None:
    body = f'"""{docstring}"""\n' if docstring else ""
    (root / name).write_text(body + "x = 1\n" * lines, encoding="utf-8")


def test_the_package_passes() -> None:
    assert problems() == []


def test_a_module_without_docstring_is_named(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    _module(package, "quiet.py", "", 3)
    assert problems(package) == ["pkg/quiet.py:1: no module docstring saying the module's job"]


def test_a_long_module_must_say_why(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    _module(package, "grown.py", "Does things.", MAX_LINES + 1)
    _module(package, "catalogue.py", "Does things. It is long because it is the catalogue.", MAX_LINES + 1)
    _module(package, "short.py", "Does things.", MAX_LINES - 2)
    [found] = problems(package)
    assert found.startswith("pkg/grown.py:1: 602 lines (more than 600)")


def test_the_architecture_table_names_every_module_and_no_ghost(tmp_path: Path) -> None:
    package = tmp_path / "syncd"
    (package / "sink").mkdir(parents=True)
    for name in ("__init__.py", "model.py", "sink/__init__.py", "sink/postgres.py"):
        (package / name).write_text('"""x"""\n', encoding="utf-8")
    doc = tmp_path / "architecture.md"
    doc.write_text("| module | holds |\n|---|---|\n| `syncd/__init__.py` | a |\n| `syncd/model.py` | b |\n"
                   "| `syncd/ha.py` | c |\n", encoding="utf-8")
    assert table_problems(package, doc) == [
        "architecture.md: the module table does not name syncd/sink/postgres.py",
        "architecture.md: the module table names syncd/ha.py, which does not exist"]
