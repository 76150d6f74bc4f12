"""A third-party MoT plugin, as a user would write one (also shown in docs/plugins.md).

It changes one teacher's branch config (a wrapper around the built-in config), replaces the merge
with its own in-process average, and records each round's end.
"""

from __future__ import annotations

import shutil

from mot_plugin.hookspecs import hookimpl


@hookimpl(wrapper=True)
def mot_branch_config(recipe, branch):
    config = yield
    if branch.teacher.name == "wordy":
        config["learning_rate"] = config["learning_rate"] / 2
    return config


@hookimpl
def mot_run_merge(recipe, step):
    """Average the branch weights in-process, without mergekit."""
    from safetensors.torch import load_file, save_file

    inputs = [load_file(b.output_dir / "model.safetensors") for b in step.spec.branches]
    merged = {name: sum(w[name] for w in inputs) / len(inputs) for name in inputs[0]}
    scratch = step.output_dir.with_name("merged.partial")
    shutil.copytree(step.spec.branches[0].output_dir, scratch, dirs_exist_ok=True)
    save_file(merged, scratch / "model.safetensors", metadata={"format": "pt"})
    scratch.rename(step.output_dir)
    return {"merged": str(step.output_dir), "by": "example_plugin"}


@hookimpl
def mot_round_end(recipe, round, student, results):
    with (recipe.run_dir / "example_rounds.txt").open("a") as log:
        log.write(f"{round} {student.name} {sorted(results)}\n")
