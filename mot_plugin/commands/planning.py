"""`mot plan`, `mot check` and `mot init`: what a recipe will run, read, write and contact."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from mot_plugin import adapters, checkpoint_io, choices
from mot_plugin.check import descriptions
from mot_plugin.commands.common import ALLOW_OPTION, SEED_OPTION, STRICT_OPTION, located, recipe_plans, run_command
from mot_plugin.errors import UserError, load_yaml
from mot_plugin.findings import SECTIONS, Description
from mot_plugin.planner import Plan, plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import RecipeError, load_recipe
from mot_plugin.registry import Registry, collect
from mot_plugin.rundir import check_paths, run_lock, step_state, write_configs
from mot_plugin.sizes import disk


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@SEED_OPTION
@click.option("--preview", is_flag=True,
              help="Plan without the data and models present, marking each missing input; imports none of the "
                   "recipe's mot.plugins and writes nothing.")
@click.option("--tokens-per-second", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training throughput of one branch, to estimate its time before any step of the run has "
                   "finished (afterwards the run's own steps are used).")
@STRICT_OPTION
def plan(recipe: str, seeds: tuple[int, ...], preview: bool, tokens_per_second: float | None, strict: bool) -> None:
    """Validate RECIPE, write every config file of the run, and print the plan. Runs nothing."""
    if preview:
        _preview(recipe, tokens_per_second)
        return
    plans, pm = recipe_plans(recipe, seeds, strict=strict)
    for the_plan in plans:
        check_paths(the_plan)
    for the_plan in plans:
        with run_lock(the_plan.recipe.run_dir):  # never rewrite the configs of a running run
            write_configs(the_plan)
    for the_plan in plans:
        _print_plan(the_plan, collect(pm.hook), tokens_per_second)
    click.echo(f"Wrote {sum(len(p.steps) for p in plans)} step configs and recipe.yaml; nothing was run. "
               f"Next: {run_command(recipe, seeds)}")


def _preview(recipe_path: str, tokens_per_second: float | None = None) -> None:
    """`mot plan --preview`: the plan of a recipe whose inputs may not be here yet."""
    from mot_plugin.recipe.walk import recipe_inputs

    notes, recipe = [], None
    try:
        recipe = load_recipe(recipe_path, check_files=False)
        pm = plugin_manager(())
        try:
            pm.hook.mot_check_recipe(recipe=recipe)
        except RecipeError as err:  # e.g. Slurm's commands missing here: the plan can still be read
            notes.append(f"note: `mot run` here would refuse it: {err}")
        the_plan = plan_run(recipe, pm.hook)
    except RecipeError as err:
        message = located(err, recipe_path)
        if recipe is not None and recipe.mot.plugins:
            message += (f" (--preview imports none of mot.plugins: {', '.join(recipe.mot.plugins)}; "
                        f"`mot check {recipe_path}` lists what they are, `mot plan {recipe_path}` imports them)")
        raise RecipeError(message) from None
    _print_plan(the_plan, collect(pm.hook), tokens_per_second)
    for line in notes:
        click.echo(line)
    click.echo("Inputs:")
    missing = 0
    for found in recipe_inputs(recipe):
        state = {True: "present", False: "MISSING", None: "hub id (not checked)"}[found.present]
        missing += found.present is False
        click.echo(f"  {found.key:<32} {state:<20} {found.value}")
    if recipe.mot.plugins:
        click.echo(f"note: the recipe's mot.plugins ({', '.join(recipe.mot.plugins)}) were not imported: their hooks "
                   f"may change this plan (`mot check {recipe_path}` lists what the recipe runs)")
    click.echo(f"Preview only: nothing was written; {missing} local input(s) missing. Fetch them, then "
               f"`mot plan {recipe_path}`.")


def _print_plan(the_plan: Plan, registry: Registry, tokens_per_second: float | None = None) -> None:
    """The plan: its size, every step (state, config path relative to the run directory), disk, I/O,
    time, the merge candidates and what the launcher and merge executors describe."""
    from mot_plugin import eta

    mot, run_dir = the_plan.recipe.mot, the_plan.recipe.run_dir
    click.echo(f"Plan for {run_dir} (step configs below are relative to it)")
    merge = (f"{len(mot.merge.candidates)} candidates" if mot.merge.candidates
             else f"{mot.merge.method} ({mot.merge.executor})")
    click.echo(f"  {len(mot.teachers)} teachers x {mot.rounds} rounds x {mot.steps_per_round} steps = "
               f"{the_plan.branch_steps} branch-steps; merge: {merge}; launcher: {mot.launch.launcher}")
    click.echo(f"  branches: {adapters.describe(the_plan.recipe)}")
    for line in choices.describe(the_plan):
        click.echo(f"  {line}")
    width = max(32, *(len(step.id) for step in the_plan.steps))
    for step in the_plan.steps:
        click.echo(f"  {step.id:<{width}} {step_state(step):<8} {step.config_path.relative_to(run_dir)}")
    click.echo(f"  disk: {disk(the_plan, registry)}")
    for line in checkpoint_io.describe(the_plan, registry) + eta.describe(the_plan, tokens_per_second):
        click.echo(f"  {line}")
    for description in descriptions(the_plan, registry):
        click.echo(f"  {description.title}:")
        click.echo("".join(f"    {line}\n" for line in description.text.splitlines()), nl=False)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--from", "source", required=True, metavar="SOURCE",
              help="A shipped recipe (toy, champ-smollm2, paper-qwen3-14b), a hub repository mot push made "
                   "(org/name, or org/name@revision), or a run directory or a folder laid out as mot push lays one out.")
@ALLOW_OPTION
@click.option("--force", is_flag=True, help="Replace DIRECTORY/NAME.yaml (and NAME.published.json).")
def init(directory: str, source: str, allowed: tuple[str, ...], force: bool) -> None:
    """Start a recipe in DIRECTORY as NAME.yaml from SOURCE: a shipped recipe (comments included), or a
    shared run's published recipe, checked like `mot check`, with its inputs' hashes beside it."""
    from mot_plugin.shipped import RECIPES, init as copy_recipe

    if source not in RECIPES:
        _init_from_published(Path(directory), source, allowed, force)
        return
    try:
        target = copy_recipe(Path(directory), source, force)
    except FileExistsError as err:
        raise UserError(str(err)) from None
    click.echo(f"Wrote {target}. Its opening comments say how to make its data; from {directory}: "
               f"`mot plan --preview {target.name}` shows what it will run.")


def _init_from_published(directory: Path, source: str, allowed: tuple[str, ...], force: bool) -> None:
    """`mot init DIRECTORY --from SOURCE` for a shared run: its recipe (run in `runs/NAME`, with
    `mot.published` naming the hashes beside it), refused like `mot check` refuses, then every input
    the user must supply with the published sha256 of each."""
    from contextlib import chdir

    import yaml

    from mot_plugin import check as checks, published
    from mot_plugin.atomic import write_json, write_text
    from mot_plugin.recipe import parse_recipe

    entries = checks.registry()
    _known_kinds(allowed, entries)
    shared = published.fetch(source)
    target, hashes_file = directory / f"{shared.name}.yaml", directory / f"{shared.name}{published.SUFFIX}"
    for path in (target, hashes_file):
        if path.exists() and not force:
            raise UserError(f"{path}: exists; pass --force to replace it")
    text = published.with_mot_keys(shared.text, {"run_dir": f"runs/{shared.name}", "published": hashes_file.name})
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with chdir(directory):  # judged as `mot` reads it: from DIRECTORY
            recipe = parse_recipe(yaml.safe_load(text), source=f"{shared.source}/recipe.yaml")
            bad = _show_findings(checks.find(recipe, Path.cwd(), yaml.safe_load(text), entries), allowed)
            if bad:
                _refuse_risky(bad, f"mot init {directory} --from {source}", 3, entries)
            write_text(Path(target.name), text)
            write_json(Path(hashes_file.name), published.to_json(shared))
            found = published.check(recipe, published.to_json(shared))
    finally:
        if created and not any(directory.iterdir()):
            directory.rmdir()
    click.echo(f"Wrote {target} and {hashes_file} (the recipe and input hashes {shared.source} published).")
    click.echo(f"Its inputs, as {target.name} names them from {directory} (the published sha256 of each):")
    for c in found:
        entry = shared.inputs.get(c.key, {})
        click.echo(f"  {c.state:<18} {c.key:<32} {c.shown}" + (f"  sha256 {entry['sha256']}" if "sha256" in entry else ""))
        for name, file in (entry.get("files") or {}).items():
            click.echo(f"{'':<56}{name}  sha256 {file['sha256']}")
    click.echo(f"Supply what is not the same data, then from {directory}: `mot plan {target.name}` compares every "
               "input with the published run's again (`--strict` refuses a difference).")


def _known_kinds(allowed: tuple[str, ...], entries: Registry) -> None:
    """Refuse an `--allow` kind `mot check` does not know."""
    from mot_plugin import check as checks

    kinds = checks.kinds(entries)
    unknown = [kind for kind in allowed if kind not in kinds]
    if unknown:
        raise UserError(f"--allow: unknown kind {unknown[0]!r} (kinds: {', '.join(kinds)})")


def _show_findings(findings: list, allowed: tuple[str, ...], described: Sequence[Description] = ()) -> list:
    """Print the findings section by section (`mot check`'s screen); return the risky ones not allowed."""
    from mot_plugin import check as checks

    bad = checks.risky(findings, allowed)
    for section in SECTIONS:
        rows = [f for f in findings if f.section == section]
        if rows:
            click.echo(f"{section.capitalize()}:")
        for f in rows:
            mark = "RISK" if f in bad else "ok" if not f.kind else "allowed"
            click.echo(f"  {mark:<7} {f.kind or '':<14} {f.key}: {f.value}" + (f"  ({f.note})" if f.note else ""))
        for description in described if section == "executes" else ():
            click.echo(f"  {description.title}:")
            click.echo("".join(f"    | {line}\n" for line in description.text.splitlines()), nl=False)
    return bad


def _refuse_risky(bad: list, command: str, code: int, entries: Registry) -> None:
    """Name the risky kinds and how to accept them, and exit with `code`."""
    from mot_plugin import check as checks

    kinds, meaning = sorted({f.kind for f in bad}), checks.kinds(entries)
    click.echo(f"{len(bad)} risky finding(s): " + "; ".join(f"{k}: {meaning[k]}" for k in kinds))
    click.echo(f"Read them; accept a kind with --allow KIND ({command} " + " ".join(f"--allow {k}" for k in kinds) + ")")
    sys.exit(code)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@ALLOW_OPTION
def check(recipe: str, allowed: tuple[str, ...]) -> None:
    """What RECIPE would execute, read, write and contact, without importing or running any of it.
    Exit 0: nothing risky; 3: risky findings (each marked RISK) not accepted with --allow."""
    from mot_plugin import check as checks

    entries = checks.registry()
    _known_kinds(allowed, entries)
    loaded = load_recipe(recipe, check_files=False)
    findings = checks.find(loaded, Path(recipe).absolute().parent, load_yaml(Path(recipe), RecipeError), entries)
    bad = _show_findings(findings, allowed, checks.describe(loaded, entries))
    if bad:
        _refuse_risky(bad, f"mot check {recipe}", 3, entries)
    click.echo("Nothing risky found.")
