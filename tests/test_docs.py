"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re

from conftest import ROOT


def _fenced_block_after(heading: str, text: str) -> list[str]:
    section = text.split(f"## {heading}", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    install, train = _fenced_block_after("Quickstart", readme)
    (test_command,) = _fenced_block_after("Tests", readme)
    assert train == "dlwp train"
    assert 'pip install --quiet -e ".[dev]"' in ci and install == 'pip install -e ".[dev]"'
    ci_lines = [line.split("#")[0].strip() for line in ci.splitlines()]
    assert test_command in ci_lines, "`.ci/run` must run exactly the README's test command"
