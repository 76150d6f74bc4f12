"""The files a recipe names: that the student, the adapter, every local dataset and the evaluation
problems exist and parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mot_plugin.jsonl import read_jsonl
from mot_plugin.recipe.resolved import Recipe
from mot_plugin.recipe.schema import DATASET_SUFFIXES, RecipeError


def check_inputs(recipe: Recipe) -> None:
    """Check that the student and every local dataset exist and parse; raise `RecipeError`."""
    src = recipe.source
    student = recipe.student
    if Path(student).is_absolute():
        problem = model_problem(Path(student))
        if problem:
            raise RecipeError(f"{src}: base_model: {student} {problem}")
    adapter_dir = recipe.axolotl.get("lora_model_dir")
    if adapter_dir and Path(adapter_dir).is_absolute() and not (Path(adapter_dir) / "adapter_config.json").is_file():
        what = "holds no adapter (adapter_config.json)" if Path(adapter_dir).is_dir() else "does not exist"
        raise RecipeError(f"{src}: lora_model_dir: {adapter_dir} {what}")
    for i, teacher in enumerate(recipe.mot.teachers):
        for j, entry in enumerate(teacher.datasets):
            key = f"mot.teachers.{i}.datasets.{j}.path"
            path = entry.get("path")
            if not path:
                raise RecipeError(f"{src}: {key}: required (teacher {teacher.name!r})")
            if Path(path).is_absolute():
                _check_dataset_file(Path(path), entry, f"{src}: {key}")
    if recipe.mot.eval:
        from mot_plugin.grading import EvalError, load_eval_file

        files = {"data": recipe.mot.eval.data, "validation": recipe.validation}
        for key, path in files.items():
            try:
                if path:
                    load_eval_file(path)
            except EvalError as err:
                raise RecipeError(f"{src}: mot.eval.{key}: {err}") from None
        if recipe.validation:
            test = {row["prompt"]: number for number, row in read_jsonl(Path(files["data"]), RecipeError)}
            for number, row in read_jsonl(Path(recipe.validation), RecipeError):
                if row["prompt"] in test:
                    raise RecipeError(f"{src}: mot.eval.validation: {recipe.validation}:{number} has the prompt of "
                                      f"{files['data']}:{test[row['prompt']]} (mot.eval.data); validation and test "
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
