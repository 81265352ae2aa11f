"""Every Python block in the README runs, and its commands are the real ones."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).parents[1] / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(index, capsys):
    exec(compile(PYTHON_BLOCKS[index], f"README.md block {index}", "exec"), {})
    assert capsys.readouterr().out  # each block prints what it shows


def test_readme_gives_the_two_commands_ci_runs():
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest" in README and "python -m pytest" in ci
    assert "python -m incremental.demo" in README
