"""Built-in baselines `single` (STD), `union` (MTD) and `oneshot` (post-hoc merge), registered like
any plugin's: each plans its own steps through a `mot_plugin.planner.Lineage`.

Budgets (`mot.baseline_budget`): `sequential` gives every baseline lineage rounds x steps_per_round
steps, like one MoT lineage; `compute` gives `single` and `union` as many steps as all MoT branches
together. With `sequential`, `oneshot` merges the `single` branches (the same training, shared).
"""

from __future__ import annotations

from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import Recipe, Teacher
from mot_plugin.registry import Baseline


def budgets(recipe: Recipe) -> tuple[int, int]:
    """(steps of one MoT lineage, steps a `single` or `union` branch trains)."""
    mot = recipe.mot
    lineage = mot.rounds * mot.steps_per_round
    return lineage, lineage * len(mot.teachers) if mot.baseline_budget == "compute" else lineage


def plan_single(lineage, settings) -> None:
    """One branch per teacher, from the student, on that teacher alone."""
    _, steps = budgets(lineage.recipe)
    for teacher in lineage.recipe.mot.teachers:
        name = f"single-{teacher.name}"
        lineage.evaluate(name, lineage.branch(name, teacher, steps))


def plan_union(lineage, settings) -> None:
    """One branch on all teachers' data together."""
    _, steps = budgets(lineage.recipe)
    teachers = lineage.recipe.mot.teachers
    union = Teacher(name="union", datasets=[d for t in teachers for d in t.datasets])
    lineage.evaluate("union", lineage.branch("union", union, steps))


def plan_oneshot(lineage, settings) -> None:
    """Each teacher's branch trained for one lineage's whole budget, merged once."""
    steps, single = budgets(lineage.recipe)
    prefix = "single" if single == steps else "oneshot"  # sequential: the single branches, shared
    branches = [lineage.branch(f"{prefix}-{t.name}", t, steps) for t in lineage.recipe.mot.teachers]
    lineage.evaluate("oneshot", lineage.merge("oneshot", branches))


@hookimpl
def mot_register(register) -> None:
    register(Baseline("single", plan=plan_single))
    register(Baseline("union", plan=plan_union))
    register(Baseline("oneshot", plan=plan_oneshot))
