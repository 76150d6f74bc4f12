"""Sharing runs: a run directory moved, copied or downloaded is still done, and commands given a run
directory act on it alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import recipe_data, write_recipe
from mot_plugin.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `root`: its mtime and bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def _fast_run(toy, tmp_path: Path, monkeypatch, rounds: int = 1) -> Path:
    """A finished run (fake branches and evaluations, real report) of a recipe in tmp_path that names its
    teachers' data (copies in tmp_path/data) and its run directory relatively; returns the run directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    local = {**toy}
    for name in ("brief", "wordy"):
        local[f"teacher:{name}"] = Path(shutil.copy(toy[f"teacher:{name}"], "data"))
    recipe = recipe_data(local, Path("run"), rounds=rounds, plugins=["fake_launcher", "example_plugin"],
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
    again = CliRunner().invoke(main, ["run", str(moved / "recipe.yaml")])
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipped") == 5 and not run_dir.exists()


def test_every_round_has_a_card_that_huggingface_hub_parses(toy, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard

    run_dir = _fast_run(toy, tmp_path, monkeypatch, rounds=2)
    final = ModelCard.load(run_dir / "round-02/merged/README.md")
    assert final.data.base_model == str(toy["student"]), "an absolute student is shown as the recipe wrote it"
    assert final.data.tags == ["merge-of-thought", "distillation", "mergekit", "axolotl"]
    assert final.data.library_name == "transformers"
    names = [r.metric_name for r in final.data.eval_results]
    assert names == ["accuracy, round 0 (student)", "accuracy, round 1", "accuracy, round 2"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [r.metric_value for r in final.data.eval_results] == [row["accuracy"] for row in metrics["mot"]]
    assert final.data.to_dict()["model-index"][0]["results"][0]["dataset"]["type"] == str(toy["eval"])
    text = final.text
    for part in ("## Recipe", "## Data", "## Compute", "## Versions", "- axolotl: ", "- mergekit: ", "- torch: ",
                 "hardware: ", "![accuracy per round and training loss](accuracy.png)", "sha256"):
        assert part in text, part
    assert (run_dir / "round-02/merged/accuracy.png").is_file()
    assert str(tmp_path) not in final.content, "no path of this machine but those the recipe's author wrote"
    assert "`data/brief.jsonl`" in text
    for sha in (e["sha256"] for e in json.loads((run_dir / "data.json").read_text()).values()):
        assert sha in text
    first = ModelCard.load(run_dir / "round-01/merged/README.md")
    assert "- round: 1" in first.text and f"- parent: `{toy['student']}`" in first.text
    assert "| brief |" in first.text and "| wordy |" in first.text and "partial" not in first.content
    assert [r.metric_name for r in first.data.eval_results] == ["accuracy, round 1"]
