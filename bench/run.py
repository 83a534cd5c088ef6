"""Run every benchmark of bench/ in turn (``make bench``); each prints its own baselines and ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = 0
    for script in ("ticks.py", "kernel_at.py", "plan.py", "optimize.py", "reload.py", "snapshot.py"):
        print(f"\n===== bench/{script} =====", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / script), *sys.argv[1:]])
    return failed


if __name__ == "__main__":
    sys.exit(main())
