"""A step's fingerprint: a hash of its config and of the steps it depends on. A changed value means
the step runs again; a moved run directory keeps its fingerprints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mot_plugin.steps import Step

RUN_DIR_MARK = "<run_dir>"
"""What a path inside the run directory starts with in a fingerprint: a moved run directory stays done."""


def portable(value: Any, run_dir: Path) -> Any:
    """`value` with every path inside `run_dir` written as `<run_dir>/...` (strings and Paths, nested)."""
    if isinstance(value, dict):
        return {k: portable(v, run_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, run_dir) for v in value]
    if isinstance(value, (str, Path)):
        text, root = str(value), str(run_dir)
        if text == root or text.startswith(root + "/"):
            return RUN_DIR_MARK + text[len(root):]
    return value


def fingerprint(config: dict, deps: list[Step], run_dir: Path) -> str:
    """Hash of a step's config (paths inside the run directory relative to it) and its deps' fingerprints."""
    text = json.dumps({"config": portable(config, run_dir), "deps": [d.fingerprint for d in deps]},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
