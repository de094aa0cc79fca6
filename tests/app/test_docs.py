"""The docs say what the code does."""

from __future__ import annotations

from pathlib import Path

from server.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    for variable in VARIABLES:
        assert f"| `{variable.name}` |" in readme, variable.name


def test_readme_shows_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("## Configuration")
    assert readme.index("make test") < readme.index("## Configuration")


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
