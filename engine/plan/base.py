"""Find the base rules of a plan: a folder of rule files, or a git revision of the configuration."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from engine.errors import RiskrailError

_PARTS = ("strategies", "rules", "schedules.yaml")


class BaseError(RiskrailError):
    """The base of a plan cannot be found or read."""


def _git(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise BaseError("git is not installed: give --base a folder of rule files instead") from None


def materialize(ref: str, config_dir: str, into: str) -> str:
    """Return a folder holding the base rule files: ``ref`` itself when it is a folder, else the files of
    ``config_dir`` at git revision ``ref``, written below ``into``."""
    if os.path.isdir(ref) and any(os.path.exists(os.path.join(ref, p)) for p in _PARTS):
        return ref
    top = _git(["rev-parse", "--show-toplevel"], config_dir)
    if top.returncode != 0:
        raise BaseError(f"--base {ref!r} is neither a folder of rule files nor usable as a git revision: "
                        f"{config_dir} is not in a git repository")
    root = Path(top.stdout.strip())
    rel = Path(os.path.relpath(Path(config_dir).resolve(), root.resolve()))
    check = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], str(root))
    if check.returncode != 0:
        raise BaseError(f"--base {ref!r} is neither a folder of rule files nor a git revision of {root}")
    prefix = "" if str(rel) == "." else f"{rel.as_posix()}/"
    listing = _git(["ls-tree", "-r", "--name-only", ref, "--", *[prefix + p for p in _PARTS]], str(root))
    files = [f for f in listing.stdout.splitlines() if f.endswith((".yaml", ".yml")) and "/tests/" not in f]
    if not files:
        raise BaseError(f"git revision {ref!r} holds no rule files under {prefix or './'}")
    out = Path(tempfile.mkdtemp(prefix="base-", dir=into))
    for f in files:
        blob = subprocess.run(["git", "show", f"{ref}:{f}"], cwd=root, capture_output=True, timeout=60)
        if blob.returncode != 0:
            raise BaseError(f"cannot read {f} at {ref}: {blob.stderr.decode(errors='replace').strip()}")
        target = out / f[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob.stdout)
    return str(out)
