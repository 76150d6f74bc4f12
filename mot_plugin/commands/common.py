"""What the `mot` commands share: a recipe's plans, a run directory's plan, the common options."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from mot_plugin.axolotl_config import VALIDATED_FILE, check_branch_configs, notes
from mot_plugin.errors import UserError
from mot_plugin.planner import Plan, plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import RecipeError, load_recipe, seed_run_dirs, with_seed
from mot_plugin.rundir import RECIPE_HEADER


def located(err: Exception, source: str) -> str:
    """The error's message, starting with the recipe file it is about."""
    return str(err) if str(err).startswith(source) else f"{source}: {err}"


def recipe_plans(recipe_path: str | Path, seeds: tuple[int, ...] = (), check_files: bool = True,
           run_dir: Path | None = None, strict: bool = False) -> tuple[list[Plan], object]:
    """The plan of the recipe, or with `seeds` one plan per seed (each in `<run_dir>/seed-N`). With
    `check_files` (plan, run), also validate every branch config with Axolotl, print a note for each
    key mot replaces and compare the inputs with the published ones (`mot.published`; `strict`:
    refuse a difference). `run_dir` replaces the recipe's `mot.run_dir`."""
    recipe = load_recipe(recipe_path, check_files=check_files)
    if check_files:
        compare_published(recipe, strict)
    if run_dir is None and Path(recipe_path).read_text().startswith(RECIPE_HEADER):
        run_dir = Path(recipe_path).parent  # a run directory's own recipe.yaml: that run, wherever it is now
    if run_dir is not None:
        recipe = replace(recipe, mot=recipe.mot.model_copy(update={"run_dir": str(run_dir.absolute())}))
    pm = plugin_manager(recipe.mot.plugins)
    plans = []
    for one in [with_seed(recipe, seed) for seed in dict.fromkeys(seeds)] or [recipe]:
        try:
            pm.hook.mot_check_recipe(recipe=one)
            plans.append(plan_run(one, pm.hook))  # a baseline may refuse its settings while it plans
        except RecipeError as err:
            raise RecipeError(located(err, one.source)) from None
    if check_files:
        found = [line for the_plan in plans for line in
                 check_branch_configs(the_plan, the_plan.recipe.run_dir / VALIDATED_FILE, click.echo)]
        for line in dict.fromkeys([*notes(plans[0].recipe), *plans[0].recipe.mot.launch.moved_notes(), *found]):
            click.echo(f"note: {line}")
    return plans, pm


def compare_published(recipe, strict: bool) -> None:
    """Say for every input whether it holds the published run's data; with `strict`, refuse (exit 2,
    one line per input) unless every input does."""
    from mot_plugin import published

    if not recipe.mot.published:
        if strict:
            raise UserError(f"{recipe.source}: --strict: the recipe has no mot.published hashes to compare with")
        return
    try:
        checks = published.check(recipe, published.read(recipe.mot.published))
    except UserError as err:
        raise UserError(located(err, recipe.source)) from None
    click.echo(f"Inputs against the published run's ({recipe.mot.published}):")
    for c in checks:
        click.echo(f"  {c.state:<18} {c.key:<32} {c.shown}" + (f"  ({c.detail})" if c.detail else ""))
    refused = [c for c in checks if c.state not in published.SAME]
    if strict and refused:
        for c in refused:
            click.echo(f"mot: error: {recipe.source}: {c.key}: {c.shown}: {c.state}"
                       + (f" ({c.detail})" if c.detail else "") + "; --strict runs only on the published data",
                       err=True)
        sys.exit(2)


def run_dir_plan(run_dir: str) -> Plan:
    """The plan of an existing run directory, from the recipe it was run with; the directory is
    `run_dir` itself, wherever the run was made (a moved or copied run directory is its own)."""
    recipe_file = Path(run_dir) / "recipe.yaml"
    if not recipe_file.is_file():
        seeds = seed_run_dirs(Path(run_dir))
        hint = (f"it holds runs of several seeds, e.g. {seeds[0]}" if seeds
                else f"is {run_dir} a run directory made by mot plan or mot run?")
        raise UserError(f"{recipe_file}: not found ({hint})")
    return recipe_plans(recipe_file, check_files=False, run_dir=Path(run_dir))[0][0]


def run_command(recipe: str, seeds: tuple[int, ...]) -> str:
    return f"mot run {recipe}" + "".join(f" --seed {seed}" for seed in dict.fromkeys(seeds))


SEED_OPTION = click.option(
    "--seed", "seeds", type=int, multiple=True,
    help="Run with mot.seed N in RUN_DIR/seed-N; repeat for several seeds (combined report in RUN_DIR).")
STRICT_OPTION = click.option(
    "--strict", is_flag=True,
    help="Refuse unless every input holds the data of the published run (mot.published) the recipe started from.")


ALLOW_OPTION = click.option(
    "--allow", "allowed", multiple=True, metavar="KIND",
    help="Accept findings of KIND (repeatable): plugin, axolotl-plugin, dataset-code, remote-code, hub, push, "
         "tracker, url, outside-path, and those the selected launcher or merge executor reports (`mot check` "
         "names each with what it means).")
