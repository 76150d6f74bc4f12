"""Reading a recipe: the YAML file, its validation, local paths made absolute; every error is a
`RecipeError` whose one line names the file, key or line at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mot_plugin.errors import CONTROL, load_yaml, validation_message
from mot_plugin.recipe.files import check_inputs
from mot_plugin.recipe.resolved import Recipe
from mot_plugin.recipe.walk import EVAL_KEYS, model_inputs, named
from mot_plugin.recipe.schema import (ADAPTERS, DATASET_SUFFIXES, HUB_ID, PLANNER_KEYS, Candidate, MotConfig,
                                      RecipeError)


def load_recipe(path: str | Path, *, check_files: bool = True) -> Recipe:
    """Read, validate and resolve the recipe at `path`."""
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such recipe file")
    data = load_yaml(path, RecipeError)
    recipe = parse_recipe(data, source=str(path))
    if check_files:
        check_inputs(recipe)
    return recipe


def parse_recipe(data: Any, *, source: str = "<recipe>") -> Recipe:
    """Validate recipe data (a mapping) and make its local paths absolute."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping")
    shared = {k: v for k, v in data.items() if k != "mot"}
    if "mot" not in data:
        raise RecipeError(f"{source}: missing the `mot:` block")
    if not shared.get("base_model"):
        raise RecipeError(f"{source}: base_model: required (the round-0 student)")
    for found in model_inputs(shared):
        value = found.value
        if value is not None and (not isinstance(value, str) or CONTROL.search(value)):
            raise RecipeError(f"{source}: {found.key}: must be one path or hub id (a string on one line), "
                              f"not {value!r}")
    plugins = shared.get("plugins")
    if plugins is not None and (not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins)):
        raise RecipeError(f"{source}: plugins: must be a list of Axolotl plugin class names, not {plugins!r}")
    for key, owner in PLANNER_KEYS.items():
        if key != "base_model" and key in shared:
            raise RecipeError(f"{source}: {key}: set per branch by mot ({owner}); remove it")
    if shared.get("adapter") and shared["adapter"] not in ADAPTERS:
        raise RecipeError(f"{source}: adapter: mot merges {' and '.join(ADAPTERS)} adapters, not {shared['adapter']!r}")
    try:
        mot = MotConfig.model_validate(data["mot"])
    except ValidationError as err:
        raise RecipeError(f"{source}: {validation_message(err, 'mot')}") from None
    for found in named(model_inputs(shared)):
        shared[found.key] = _local_or_hub(found.value, f"{source}: {found.key}")
    teachers = [
        t.model_copy(update={"datasets": [_resolve_dataset(d, f"{source}: mot.teachers.{i}.datasets.{j}")
                                          for j, d in enumerate(t.datasets)]})
        for i, t in enumerate(mot.teachers)
    ]
    update = {"teachers": teachers, "run_dir": str(_run_dir(mot.run_dir, f"{source}: mot.run_dir"))}
    if mot.eval:
        given = {key: getattr(mot.eval, key) for key in EVAL_KEYS}
        update["eval"] = mot.eval.model_copy(update={
            key: str(Path(path).expanduser().absolute()) for key, path in given.items() if path})
    if mot.published:
        update["published"] = str(Path(mot.published).expanduser().absolute())
    if len(mot.merge.candidates) == 1:  # one candidate is the merge
        update["merge"] = mot.merge.choices()[0][1]
    elif mot.merge.candidates:  # each candidate written out in full, as it merges
        update["merge"] = mot.merge.model_copy(update={"candidates": [
            Candidate.model_validate({**merge.model_dump(exclude={"candidates", "keep_candidates"}), "name": name})
            for name, merge in mot.merge.choices()]})
    mot = mot.model_copy(update=update)
    _check_choices(mot, source)
    return Recipe(axolotl=shared, mot=mot, source=source)


def _check_choices(mot: MotConfig, source: str) -> None:
    """Candidates with distinct names and settings; every choice on validation has a validation file."""
    choices = mot.merge.choices()
    for i, (name, merge) in enumerate(choices):
        key = f"{source}: mot.merge.candidates.{i}"
        taken = [j for j, (other, _) in enumerate(choices[:i]) if other == name]
        if taken:
            raise RecipeError(f"{key}: the name {name!r} is taken by mot.merge.candidates.{taken[0]}; give each "
                              f"candidate its own `name`")
        same = [j for j, (_, other) in enumerate(choices[:i]) if other == merge]
        if same:
            raise RecipeError(f"{key}: the same merge as mot.merge.candidates.{same[0]}")
    if mot.eval and mot.eval.validation:
        return
    needs = [("mot.merge.candidates", "choosing among merge candidates")] if choices else []
    needs += [("mot.select", "select: validation")] if mot.select == "validation" else []
    needs += [(f"mot.merge.candidates.{i}.weights" if choices else "mot.merge.weights", "weights: validation")
              for i, (_, merge) in enumerate(choices or [(None, mot.merge)]) if merge.weights == "validation"]
    if needs:
        key, what = needs[0]
        raise RecipeError(f"{source}: {key}: {what} needs a validation split (mot.eval.validation)")


def _looks_local(value: str) -> bool:
    """A path rather than a hub id: explicit (`./`, `/`, `~`), existing, or deeper than `org/name`."""
    return value.startswith((".", "/", "~")) or Path(value).exists() or value.count("/") > 1


def _local_or_hub(value: str, where: str, suffixes: tuple[str, ...] = ()) -> str:
    """Absolute path for a local path (`~` expanded); a hub id (`org/name`) is kept as it is; any
    other relative path that does not exist (a typo) is refused."""
    if _looks_local(value) or value.endswith(suffixes):
        return str(Path(value).expanduser().absolute())
    if not HUB_ID.fullmatch(value):
        raise RecipeError(f"{where}: {value} is neither an existing path nor a hub id (org/name); "
                          f"write ./{value} for a local path that does not exist yet")
    return value


def _resolve_dataset(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RecipeError(f"{where}: must be a mapping (an Axolotl datasets entry), not {entry!r}")
    path = entry.get("path")
    if path is None:
        return dict(entry)
    if not isinstance(path, str) or not path or CONTROL.search(path):
        raise RecipeError(f"{where}.path: must be one path or hub id (a string on one line), not {path!r}")
    return {**entry, "path": _local_or_hub(path, f"{where}.path", DATASET_SUFFIXES)}


def _run_dir(value: str, where: str) -> Path:
    """The run directory, absolute with `~` expanded; refused when it or a parent is not a directory."""
    path = Path(value).expanduser().absolute()
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise RecipeError(f"{where}: {parent} is not a directory")
            break
    return path
