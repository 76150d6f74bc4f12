"""A third-party MoT plugin, as a user would write one (also shown in docs/plugins.md).

It changes one teacher's branch config (a wrapper around the built-in config) and records each
round's end.
"""

from __future__ import annotations

from mot_plugin.hookspecs import hookimpl


@hookimpl(wrapper=True)
def mot_branch_config(recipe, branch):
    config = yield
    if branch.teacher.name == "wordy":
        config["learning_rate"] = config["learning_rate"] / 2
    return config


@hookimpl
def mot_round_end(recipe, round, student, results):
    with (recipe.run_dir / "example_rounds.txt").open("a") as log:
        log.write(f"{round} {student.name} {sorted(results)}\n")
