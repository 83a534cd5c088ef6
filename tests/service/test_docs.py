"""The embedding example of docs/service.md runs as written (against the shipped rules)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_documented_coordinator_example_runs() -> None:
    text = (ROOT / "docs" / "service.md").read_text()
    [code] = re.findall(r"```python\n(.*?)```", text, re.S)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["open", "None"]
