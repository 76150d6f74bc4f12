"""Adapter branches for `mot plan`: what they are in words, and their sizes (and those of the copies
mergekit makes to merge them) for the disk estimate, read from the student's safetensors headers."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

from mot_plugin.recipe import Recipe

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
PEFT_DEFAULT_R = 8
"""PEFT's `r` when a recipe sets no `lora_r`."""


def weight_shapes(model: Path) -> dict[str, list[int]]:
    """Every tensor's shape in a local checkpoint's safetensors files, by name."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(model.glob("*.safetensors")):
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        shapes.update({name: meta["shape"] for name, meta in header.items() if name != "__metadata__"})
    return shapes


def _targeted(module: str, config: dict[str, Any]) -> bool:
    """Whether PEFT would put a LoRA on `module` (PEFT's rules: a list matches a name or its last
    dotted parts, a string is a regex over the whole name; `lora_target_linear`: every linear layer)."""
    targets = config.get("lora_target_modules")
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    if any(module == t or module.endswith(f".{t}") for t in targets or []):
        return True
    return bool(config.get("lora_target_linear")) and not re.search(r"embed|lm_head", module)


def adapter_bytes(model: Path, config: dict[str, Any]) -> int | None:
    """Estimated bytes of one branch's adapter: r x (in + out) float32 parameters per targeted 2-D
    weight of the student, plus full copies of `lora_modules_to_save`. None if `model` is not local."""
    shapes = weight_shapes(model) if model.is_dir() else {}
    if not shapes:
        return None
    r = config.get("lora_r") or PEFT_DEFAULT_R
    saved = config.get("lora_modules_to_save") or []
    params = 0
    for name, shape in shapes.items():
        module = name.removesuffix(".weight")
        if any(f".{m}." in f".{name}" for m in saved):
            params += math.prod(shape)
        elif name.endswith(".weight") and len(shape) == 2 and _targeted(module, config):
            params += r * (shape[0] + shape[1])
    return 4 * params


def merged_copy_bytes(model: Path, dtype: str) -> int | None:
    """Bytes of the student written in `dtype`: what mergekit writes for each adapter it merges."""
    shapes = weight_shapes(model) if model.is_dir() else {}
    if not shapes:
        return None
    return DTYPE_BYTES.get(dtype, 4) * sum(math.prod(shape) for shape in shapes.values())


def describe(recipe: Recipe) -> str:
    """What kind of branch the recipe trains, in words (for `mot plan`)."""
    if not recipe.adapter:
        return "full fine-tunes (every weight of the round's student)"
    rank = f"lora_r {recipe.axolotl.get('lora_r') or PEFT_DEFAULT_R}"
    if recipe.adapter == "qlora":
        return (f"QLoRA adapters ({rank}) on the round's student quantized to 4 bits; each merge applies "
                f"their updates to the full-precision student (mergekit), which the next round quantizes again")
    return f"LoRA adapters ({rank}) on the round's student; each merge applies them to it as full weights (mergekit)"
