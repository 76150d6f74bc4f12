"""`mot run`, `mot status`, `mot report`, `mot compare`, `mot eval` and `mot push`: running a recipe
and reading, comparing and sharing its results."""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import click

from mot_plugin import choices
from mot_plugin.commands.common import SEED_OPTION, STRICT_OPTION, recipe_plans, run_command, run_dir_plan
from mot_plugin.diagnostics import summary
from mot_plugin.errors import StepFailed, UserError
from mot_plugin.hub import check_repo_id
from mot_plugin.recipe import Eval, model_problem, seed_run_dirs
from mot_plugin.rundir import check_paths, status_rows
from mot_plugin.runner import run_plan

EVAL_DEFAULTS = {name: field.default for name, field in Eval.model_fields.items()}
"""`mot eval`'s defaults: the recipe's `mot.eval` defaults."""

@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@SEED_OPTION
@STRICT_OPTION
def run(recipe: str, seeds: tuple[int, ...], strict: bool) -> None:
    """Run RECIPE (once per --seed, one after another); running it again resumes where it stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the running step's process too
    again = run_command(recipe, seeds)
    plans, pm = recipe_plans(recipe, seeds, strict=strict)
    for the_plan in plans:
        if seeds:
            click.echo(f"Seed {the_plan.recipe.mot.seed}: {the_plan.recipe.run_dir}")
        try:
            run_plan(the_plan, pm.hook, echo=click.echo)
        except StepFailed as err:
            raise StepFailed(f"{err} (finished steps are kept; rerun `{again}` to resume)") from None
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


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def report(run_dirs: tuple[str, ...]) -> None:
    """Write metrics.json, report.md, accuracy.png and the final model's card for RUN_DIRS
    (several run directories of one recipe, e.g. seeds, are reported as mean and std; a directory
    holding `mot run --seed` runs is reported for each seed, then combined)."""
    from mot_plugin.report import write_report

    parent = Path(run_dirs[0])
    seeds = seed_run_dirs(parent) if len(run_dirs) == 1 and not (parent / "recipe.yaml").is_file() else []
    plans = [run_dir_plan(str(d)) for d in seeds or run_dirs]
    for the_plan in plans:
        check_paths(the_plan)  # the report and cards go below each run directory, never through a symlink
    if not seeds:
        click.echo(f"Report: {write_report(plans)}")
        return
    for the_plan in plans:
        write_report([the_plan])
    click.echo(f"Report: {write_report(plans, parent)}")


@click.command()
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
def compare(run_a: str, run_b: str, as_json: bool) -> None:
    """RUN_A and RUN_B side by side (a reproduction and its original): every evaluation with its
    interval, McNemar where both answered the same problems, and what differs in their recipes and data."""
    import json

    from mot_plugin.compare import compare_runs, render

    comparison = compare_runs(run_dir_plan(run_a), run_dir_plan(run_b))
    click.echo(json.dumps(comparison, indent=2) if as_json else render(comparison), nl=as_json)


@click.command("eval")
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


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: every step's state, result and log, and "
                                                      "the estimated seconds left.")
def status(run_dir: str, as_json: bool) -> None:
    """What is done, running, failed or pending in RUN_DIR, with each step's result and log."""
    from mot_plugin import eta

    the_plan = run_dir_plan(run_dir)
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


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("repo_id", required=False)
@click.option("--revisions", is_flag=True, help="Also push every round's merged model to a branch round-NN.")
@click.option("--private", is_flag=True, help="Create the repository private (default: the recipe's hub_private_repo).")
@click.option("--dry-run", is_flag=True, help="List what would go where; upload and write nothing.")
def push(run_dir: str, repo_id: str | None, revisions: bool, private: bool, dry_run: bool) -> None:
    """Upload RUN_DIR's final student, its card, the recipe and data.json to the hub model REPO_ID
    (default: the recipe's hub_model_id), through huggingface_hub (its login or HF_TOKEN)."""
    from mot_plugin import push as pushing

    the_plan = run_dir_plan(run_dir)
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
