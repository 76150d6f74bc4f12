"""A baseline: SFT from the student on the union of some teachers' data (does a smaller mix do as
well?). Select it with `baselines: [{subset: {teachers: [r1, qwq]}}]`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mot_plugin.hookspecs import hookimpl
from mot_plugin.recipe import RecipeError, Teacher
from mot_plugin.registry import Baseline


class SubsetSettings(BaseModel):
    """`{subset: {...}}` in `mot.baselines`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teachers: list[str] = Field(min_length=1)
    """The teachers whose data is mixed."""
    steps: int | None = Field(default=None, ge=1)
    """Optimizer steps; default: one MoT lineage's (rounds x steps_per_round)."""


def plan(lineage, settings: SubsetSettings):
    """One branch on the chosen teachers' data, and its evaluation (steps `baseline/subset`, `eval/subset`)."""
    mot = lineage.recipe.mot
    chosen = [t for t in mot.teachers if t.name in settings.teachers]
    missing = sorted(set(settings.teachers) - {t.name for t in chosen})
    if missing:
        raise RecipeError(f"mot.baselines: subset: no teacher named {missing[0]!r}")
    mix = Teacher(name="subset", datasets=[d for t in chosen for d in t.datasets])
    branch = lineage.branch("subset", mix, settings.steps or mot.rounds * mot.steps_per_round)
    lineage.evaluate("subset", branch)


@hookimpl
def mot_register(register):
    register(Baseline("subset", plan=plan, settings=SubsetSettings))
