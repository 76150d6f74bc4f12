"""Adapter branches for `mot plan`: what they are in words (their sizes: `mot_plugin.sizes`)."""

from __future__ import annotations

from mot_plugin.recipe import Recipe

PEFT_DEFAULT_R = 8
"""PEFT's `r` when a recipe sets no `lora_r`."""


def describe(recipe: Recipe) -> str:
    """What kind of branch the recipe trains, in words (for `mot plan`)."""
    if not recipe.adapter:
        return "full fine-tunes (every weight of the round's student)"
    rank = f"lora_r {recipe.axolotl.get('lora_r') or PEFT_DEFAULT_R}"
    if recipe.adapter == "qlora":
        return (f"QLoRA adapters ({rank}) on the round's student quantized to 4 bits; each merge applies "
                f"their updates to the full-precision student (mergekit), which the next round quantizes again")
    return f"LoRA adapters ({rank}) on the round's student; each merge applies them to it as full weights (mergekit)"
