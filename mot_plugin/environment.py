"""What a run ran with: tool versions and hardware, recorded by `mot run` as `environment.json`."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

ENVIRONMENT_FILE = "environment.json"
TOOLS = ("mot-plugin", "axolotl", "mergekit", "transformers", "torch", "huggingface_hub")


def tool_versions() -> dict[str, str | None]:
    """The installed version of each tool a run uses (None: not installed)."""
    found = {}
    for name in TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def hardware() -> dict[str, Any]:
    """This machine: OS, CPU, core count, and the CUDA devices torch sees."""
    info: dict[str, Any] = {"os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
                            "cpu": platform.processor() or None, "cpu_cores": os.cpu_count(), "gpus": []}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def environment() -> dict[str, Any]:
    return {"versions": tool_versions(), "hardware": hardware(), "python": platform.python_version()}
