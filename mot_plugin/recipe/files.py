"""The files a recipe names: that the student, the adapter, every local dataset and the evaluation
problems exist and parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mot_plugin.jsonl import read_jsonl
from mot_plugin.recipe.resolved import Recipe
from mot_plugin.recipe.schema import DATASET_SUFFIXES, RecipeError
from mot_plugin.recipe.walk import dataset_inputs, eval_inputs, model_inputs, named


def check_inputs(recipe: Recipe) -> None:
    """Check that the student and every local dataset exist and parse; raise `RecipeError`."""
    src, data = recipe.source, recipe.to_dict()
    for found in named(model_inputs(data)):
        check = MODEL_CHECKS.get(found.key)
        problem = check(Path(found.value)) if check and found.local else None
        if problem:
            raise RecipeError(f"{src}: {found.key}: {found.value} {problem}")
    for found in dataset_inputs(data):
        if not found.value:
            raise RecipeError(f"{src}: {found.key}: required (teacher {found.teacher!r})")
        if found.local:
            _check_dataset_file(Path(found.value), found.entry, f"{src}: {found.key}")
    if recipe.mot.eval:
        from mot_plugin.grading import EvalError, load_eval_file

        for found in named(eval_inputs(data)):
            try:
                load_eval_file(found.value)
            except EvalError as err:
                raise RecipeError(f"{src}: {found.key}: {err}") from None
        test_file = recipe.mot.eval.data
        if recipe.validation:
            test = {row["prompt"]: number for number, row in read_jsonl(Path(test_file), RecipeError)}
            for number, row in read_jsonl(Path(recipe.validation), RecipeError):
                if row["prompt"] in test:
                    raise RecipeError(f"{src}: mot.eval.validation: {recipe.validation}:{number} has the prompt of "
                                      f"{test_file}:{test[row['prompt']]} (mot.eval.data); validation and test "
                                      f"must not share problems")


def _has_weights(model_dir: Path) -> bool:
    return any(model_dir.glob("*.safetensors")) or any(model_dir.glob("*.bin"))


def model_problem(model_dir: Path, adapters: bool = False) -> str | None:
    """What keeps `model_dir` from being a model (or, with `adapters`, a LoRA adapter); None if nothing."""
    if not model_dir.exists():
        return "does not exist"
    if not model_dir.is_dir():
        return "is not a directory"
    if adapters and (model_dir / "adapter_config.json").is_file():
        return None
    if not (model_dir / "config.json").is_file() or not _has_weights(model_dir):
        return "holds no model (config.json and weights)"
    return None


def _adapter_problem(adapter_dir: Path) -> str | None:
    """What keeps `adapter_dir` from being a LoRA adapter; None if nothing."""
    if (adapter_dir / "adapter_config.json").is_file():
        return None
    return "holds no adapter (adapter_config.json)" if adapter_dir.is_dir() else "does not exist"


MODEL_CHECKS = {"base_model": model_problem, "lora_model_dir": _adapter_problem}
"""What is checked of a local model input (the tokenizer is Axolotl's to load)."""


def _check_dataset_file(path: Path, entry: dict[str, Any], where: str) -> None:
    """An existing dataset file of a kind Axolotl loads; a JSONL file's rows parse, and for
    `type: chat_template` each holds a list of messages with a role and a text content."""
    if not path.exists():
        raise RecipeError(f"{where}: {path} does not exist")
    if path.is_dir():
        return
    if path.suffix not in DATASET_SUFFIXES and "ds_type" not in entry:
        raise RecipeError(f"{where}: {path} is not a dataset file ({', '.join(DATASET_SUFFIXES)}, or set ds_type)")
    if path.suffix != ".jsonl":
        return
    chat = entry.get("type") == "chat_template"
    mapping = entry.get("message_property_mappings") or {}
    field = entry.get("field_messages", "messages")
    keys = (mapping.get("role", entry.get("message_field_role", "role")),
            mapping.get("content", entry.get("message_field_content", "content")))
    rows = 0
    for number, row in read_jsonl(path, RecipeError):
        rows += 1
        messages = row.get(field)
        if chat and not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get(keys[0]), str) and isinstance(m.get(keys[1]), str)
                for m in messages)):
            raise RecipeError(f"{where}: {path}:{number}: not a chat row (needs `{field}`: a list of messages, "
                              f"each with a {keys[0]!r} and a {keys[1]!r} string)")
    if rows == 0:
        raise RecipeError(f"{where}: {path} has no rows")
