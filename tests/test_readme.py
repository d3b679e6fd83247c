"""The README's Python code runs as written (in a fresh MODELPORT_HOME)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks, "the README shows no Python example"
    env = {**os.environ, "MODELPORT_HOME": str(tmp_path / "home"), "MODELPORT_USER": "readme"}
    for block in blocks:
        out = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "home" / "registry.db").is_file()


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.startswith("make quickstart")
    assert "make test" in first_block
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    assert "quickstart:" in makefile
    assert "test:" in makefile
