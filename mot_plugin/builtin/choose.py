"""Built-in choice among a round's merge candidates (`mot_choose`): the highest validation accuracy
continues, ties going to the candidate listed first. The winner's files are hard-linked into the
round's `merged/` (copied where the file system cannot link), so the choice costs no disk and the
candidate's own directory can be deleted later without touching the round's student."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mot_plugin.atomic import read_json, remove_tree, write_text
from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import StepFailed
from mot_plugin.recipe import Recipe
from mot_plugin.results import ChoiceResult
from mot_plugin.steps import Step


def link_tree(source: Path, target: Path) -> None:
    """`target`: a tree of hard links to the files under `source` (copies where linking fails)."""
    for path in sorted(source.rglob("*")):
        to = target / path.relative_to(source)
        if path.is_dir():
            to.mkdir(parents=True, exist_ok=True)
            continue
        to.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, to)
        except OSError:
            shutil.copy2(path, to)


@hookimpl(trylast=True)
def mot_choose(recipe: Recipe, step: Step) -> ChoiceResult:
    """The candidate with the highest validation accuracy (the first of equals) becomes the round's student."""
    candidates = step.config["candidates"]
    scores = {c["name"]: ((read_json(Path(c["validation"])) or {}).get("result") or {}).get("accuracy")
              for c in candidates}
    scored = [c for c in candidates if scores[c["name"]] is not None]
    best = max(scored, key=lambda c: scores[c["name"]]) if scored else None  # max keeps the first of equals
    lines = [f"{c['name']}: validation accuracy {scores[c['name']]} ({c['validation']})" for c in candidates]
    write_text(step.log_path, "\n".join([*lines, f"chosen: {best['name']} ({step.config['rule']})" if best
                                          else "no candidate has a validation accuracy"]) + "\n")
    if best is None:
        raise StepFailed(f"{step.id} failed: no candidate has a validation accuracy; see {step.log_path}")
    scratch = step.output_dir.with_name(step.output_dir.name + ".partial")
    try:
        remove_tree(scratch, recipe.run_dir)
        link_tree(Path(best["merged"]), scratch)
        remove_tree(step.output_dir, recipe.run_dir)
        scratch.rename(step.output_dir)
    except OSError as err:
        raise StepFailed(f"{step.id} failed: {best['merged']} not linked into {step.output_dir} ({err})") from None
    return ChoiceResult(chosen=best["name"], validation=scores, merged=str(step.output_dir))
