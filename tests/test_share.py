"""Sharing runs: a run directory moved, copied or downloaded is still done, and commands given a run
directory act on it alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from mot_plugin.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `root`: its mtime and bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


PROVENANCE = {"teacher": "brief", "model": "brief-model-v1", "endpoint": "http://127.0.0.1:8000/v1/chat/completions",
              "temperature": 0.7, "max_tokens": 512, "date": "2026-01-01T00:00:00+00:00", "prompts_sha256": "ab" * 32}


def _fast_run(toy, tmp_path: Path, monkeypatch, rounds: int = 1) -> Path:
    """A finished run (fake branches and evaluations, real report) of a recipe in tmp_path that names its
    teachers' data (copies in tmp_path/data) and its run directory relatively; returns the run directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    local = {**toy}
    for name in ("brief", "wordy"):
        local[f"teacher:{name}"] = Path(shutil.copy(toy[f"teacher:{name}"], "data"))
    Path("data/brief.provenance.json").write_text(json.dumps(PROVENANCE))  # as `mot data generate` writes it
    recipe = recipe_data(local, Path("run"), rounds=rounds, **FAST,
                         eval={"data": str(toy["eval"])})
    result = CliRunner().invoke(main, ["run", str(write_recipe(Path("r.yaml"), recipe))])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def _states(run_dir: Path) -> list[str]:
    result = CliRunner().invoke(main, ["status", str(run_dir)])
    assert result.exit_code == 0, result.output
    return [line.split()[1] for line in result.output.splitlines() if not line.startswith(" ")]


def test_moved_run_directory_is_done_and_report_stays_inside(toy, tmp_path, monkeypatch):
    run_dir = _fast_run(toy, tmp_path, monkeypatch)
    copy = tmp_path / "elsewhere" / "copied-run"
    shutil.copytree(run_dir, copy)
    before = snapshot(tmp_path)
    assert set(_states(copy)) == {"done"}
    report = CliRunner().invoke(main, ["report", str(copy)])
    assert report.exit_code == 0 and f"Report: {copy / 'report.md'}" in report.output
    after = snapshot(tmp_path)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert changed and all(path.startswith("elsewhere/copied-run/") for path in changed), changed
    assert json.loads((copy / "metrics.json").read_text())["run_dir"] == str(copy)
    recorded = yaml.safe_load((copy / "recipe.yaml").read_text())
    assert recorded["mot"]["run_dir"] == "."
    assert "run_dir: run\n" in (copy / "recipe.source.yaml").read_text(), "the recipe as its author wrote it"


def test_copy_on_another_machine_without_the_data_is_done_and_resumes_in_place(toy, tmp_path, monkeypatch):
    run_dir = _fast_run(toy, tmp_path, monkeypatch)
    shutil.rmtree(tmp_path / "data")  # the data are not on the machine the run directory was copied to
    moved = tmp_path / "downloaded"
    run_dir.rename(moved)
    assert set(_states(moved)) == {"done"}
    again = CliRunner().invoke(main, ["run", str(moved / "recipe.yaml")])  # check_files: the data must be here
    assert again.exit_code == 2 and "does not exist" in again.output
    assert not run_dir.exists()


def test_run_directory_recipe_resumes_where_it_is(toy, tmp_path, monkeypatch):
    run_dir = _fast_run(toy, tmp_path, monkeypatch)
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    planned = CliRunner().invoke(main, ["plan", str(moved / "recipe.yaml")])
    assert planned.exit_code == 0 and f"Plan for {moved}" in planned.output, planned.output
    merge = (moved / "round-01/merge.yaml").read_text()
    assert str(moved / "round-01/branch-brief/model") in merge and not run_dir.exists(), "configs for the new place"
    again = CliRunner().invoke(main, ["run", str(moved / "recipe.yaml")])
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipped") == 5 and not run_dir.exists()


def test_every_round_has_a_card_that_huggingface_hub_parses(toy, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard

    run_dir = _fast_run(toy, tmp_path, monkeypatch, rounds=2)
    final = ModelCard.load(run_dir / "round-02/merged/README.md")
    assert final.data.base_model is None, "a local student without a known hub id is no base_model"
    assert final.data.tags == ["merge-of-thought", "distillation", "mergekit", "axolotl"]
    assert final.data.library_name == "transformers"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [r.metric_value for r in final.data.eval_results] == [round(metrics["mot"][-1]["accuracy"], 4)]
    assert final.data.to_dict()["model-index"][0]["results"][0]["dataset"] == {"name": "eval", "type": "eval"}
    text = final.text
    for part in ("## Recipe", "## Data", "## Compute", "## Versions", "- axolotl: ", "- mergekit: ", "- torch: ",
                 "hardware: ", "![accuracy per round and training loss](accuracy.png)", "sha256"):
        assert part in text, part
    assert (run_dir / "round-02/merged/accuracy.png").is_file()
    assert str(tmp_path) not in final.content, "no path of this machine but those the recipe's author wrote"
    assert "`data/brief.jsonl`" in text
    assert "| `data/brief.jsonl` | brief-model-v1 | http://127.0.0.1:8000/v1/chat/completions | 0.7 | 512 |" in text
    assert json.loads((run_dir / "data.json").read_text())[str(tmp_path / "data/brief.jsonl")]["provenance"] == PROVENANCE
    for sha in (e["sha256"] for e in json.loads((run_dir / "data.json").read_text()).values()):
        assert sha in text
    first = ModelCard.load(run_dir / "round-01/merged/README.md")
    assert "- round: 1" in first.text and f"- parent: the student `{toy['student']}`" in first.text
    assert "| brief |" in first.text and "| wordy |" in first.text and "partial" not in first.content
    assert [r.metric_value for r in first.data.eval_results] == [round(metrics["mot"][1]["accuracy"], 4)]


@pytest.mark.parametrize("name", ["toy", "champ-smollm2", "paper-qwen3-14b"])
def test_init_then_preview_plans_without_the_inputs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["init", "mine", "--from", name])
    assert made.exit_code == 0, made.output
    copied = (tmp_path / "mine" / f"{name}.yaml").read_text()
    shipped = (Path(__file__).parents[1] / "recipes" / f"{name}.yaml").read_text()
    assert copied.startswith("# ") and copied == shipped.replace(f"recipes/{name}.yaml", f"{name}.yaml")
    monkeypatch.chdir(tmp_path / "mine")
    preview = CliRunner().invoke(main, ["plan", "--preview", f"{name}.yaml"])
    assert preview.exit_code == 0, preview.output
    assert "round-01/merge" in preview.output and "Preview only: nothing was written" in preview.output
    inputs = yaml.safe_load(copied)
    assert "MISSING" in preview.output
    student = "hub id (not checked)" if name == "paper-qwen3-14b" else "MISSING"  # ./toy/student: a local path
    assert f"base_model                       {student}" in preview.output
    assert f"{tmp_path / 'mine' / inputs['mot']['eval']['data']}" in preview.output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == [f"{name}.yaml"], "the preview wrote nothing"
    again = CliRunner().invoke(main, ["init", ".", "--from", name])
    assert again.exit_code == 2 and "exists" in again.output


def test_preview_imports_no_recipe_plugin(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = recipe_data(toy, tmp_path / "run", plugins=["no_such_module_anywhere"])
    preview = CliRunner().invoke(main, ["plan", "--preview", str(write_recipe(tmp_path / "r.yaml", data))])
    assert preview.exit_code == 0, preview.output
    assert "mot.plugins (no_such_module_anywhere) were not imported" in preview.output
    assert "0 local input(s) missing" in preview.output and not (tmp_path / "run").exists()


def test_preview_of_a_plugin_baseline_says_why_it_is_unknown(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = recipe_data(toy, tmp_path / "run", plugins=["tests.example_plugins.subset_baseline"])
    data["mot"]["baselines"] = [{"subset": {"teachers": [data["mot"]["teachers"][0]["name"]]}}]
    preview = CliRunner().invoke(main, ["plan", "--preview", str(write_recipe(tmp_path / "r.yaml", data))])
    assert preview.exit_code == 2 and len(preview.output.strip().splitlines()) == 1, preview.output
    assert "unknown baseline 'subset'" in preview.output
    assert "--preview imports none of mot.plugins: tests.example_plugins.subset_baseline" in preview.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_init_and_preview_from_an_installed_wheel(tmp_path):
    """The shipped recipes come from the installed package, not the source tree."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    source = tmp_path / "source"
    shutil.copytree(root / "mot_plugin", source / "mot_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source)
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    run = lambda *cmd, cwd=tmp_path: subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", "dist", str(source))
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("mot_plugin-*.whl")
    assert run(sys.executable, "-m", "venv", "--system-site-packages", "venv").returncode == 0
    python = str(tmp_path / "venv/bin/python")
    # this interpreter's packages (axolotl, mergekit, ...) after the venv's own; its .pth files (the
    # editable install of the source tree) are not read from there
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "outer.pth").write_text("\n".join(__import__("site").getsitepackages()) + "\n")
    installed = run(python, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    work = tmp_path / "work"
    work.mkdir()
    where = run(python, "-c", "import mot_plugin; print(mot_plugin.__file__)", cwd=work)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr
    script = """if True:  # one interpreter for all commands: torch and mergekit are imported once
        from click.testing import CliRunner
        from mot_plugin.cli import main
        for name in ("toy", "champ-smollm2", "paper-qwen3-14b"):
            for args in (["init", ".", "--from", name], ["plan", "--preview", f"{name}.yaml"]):
                result = CliRunner().invoke(main, args)
                print(result.exit_code, name, result.output.splitlines()[-1])
    """
    commands = run(python, "-c", script, cwd=work)
    lines = commands.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("0 ") for line in lines), commands.stdout + commands.stderr
    assert all("Preview only: nothing was written" in line for line in lines[1::2])


def test_push_of_an_unfinished_run_is_refused(toy, tmp_path, monkeypatch):
    run_dir = _fast_run(toy, tmp_path, monkeypatch)
    no_repo = CliRunner().invoke(main, ["push", str(run_dir), "--dry-run"])
    assert no_repo.exit_code == 2 and "give REPO_ID (the recipe sets no hub_model_id)" in no_repo.output
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    (run_dir / "recipe.yaml").write_text("# The recipe of the run" + yaml.safe_dump({**recipe, "hub_model_id": "me/from-recipe"}))
    from_recipe = CliRunner().invoke(main, ["push", str(run_dir), "--dry-run"])
    assert from_recipe.exit_code == 0 and "me/from-recipe@main" in from_recipe.output
    shutil.rmtree(run_dir / "round-01/merged")
    result = CliRunner().invoke(main, ["push", str(run_dir), "me/x", "--dry-run"])
    assert result.exit_code == 2 and "is not there; finish the run first" in result.output


def test_preview_of_a_slurm_recipe_without_slurm_here(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no squeue
    data = recipe_data(toy, tmp_path / "run", launch={"launcher": "slurm"})
    preview = CliRunner().invoke(main, ["plan", "--preview", str(write_recipe(tmp_path / "r.yaml", data))])
    assert preview.exit_code == 0, preview.output
    assert "note: `mot run` here would refuse it: mot.launch.launcher: slurm needs sbatch" in preview.output
