"""The shipped recipes (package data) and `mot init`, which copies one out with its comments."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

RECIPES = ("toy", "champ-smollm2", "paper-qwen3-14b")


def recipe_text(name: str) -> str:
    """The shipped recipe `name`, as written (comments included)."""
    return (files("mot_plugin") / "recipes" / f"{name}.yaml").read_text()


def init(directory: Path, name: str, force: bool = False) -> Path:
    """Copy the shipped recipe `name` to `directory/<name>.yaml`; its comments' commands, written for
    the repository root (`recipes/<name>.yaml`), name the copy; raise FileExistsError if it exists
    (unless `force`)."""
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force to replace it, or choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(recipe_text(name).replace(f"recipes/{name}.yaml", target.name))
    return target
