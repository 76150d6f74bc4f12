"""Checkpoint I/O: the bytes `mot plan` says each round reads and writes, and the shard size and dtype
branches and merges are written in (the merge itself: one slow test with a tiny shard size)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import recipe_data, write_recipe
from mot_plugin import checkpoint_io, sizes
from mot_plugin.sizes import weight_shapes
from mot_plugin.cli import main
from mot_plugin.planner import plan_run
from mot_plugin.sizes import human_bytes
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import RecipeError, parse_recipe


def _plan(data):
    recipe = parse_recipe(data)
    pm = plugin_manager()
    pm.hook.mot_check_recipe(recipe=recipe)
    return plan_run(recipe, pm.hook)


def _params(toy) -> int:
    return sum(math.prod(shape) for shape in weight_shapes(toy["student"]).values())


def _student_bytes(toy) -> int:
    return sum(f.stat().st_size for f in toy["student"].glob("*.safetensors"))


def test_each_round_reads_and_writes_what_its_steps_load_and_save(toy, tmp_path):
    """float32 branches (bf16 and fp16 false): K branches load the student and save K checkpoints,
    the merge reads K and writes one, the round's evaluation reads one."""
    data = recipe_data(toy, tmp_path / "run", teachers=("brief", "wordy", "tensfirst"), rounds=3,
                       eval={"data": str(toy["eval"])})
    rounds = sizes.round_io(_plan(data))
    params, student = _params(toy), _student_bytes(toy)
    one = 4 * params
    first = rounds[1]
    assert (first["branch"].steps, first["branch"].read, first["branch"].written) == (3, 3 * student, 3 * one)
    assert (first["merge"].steps, first["merge"].read, first["merge"].written) == (1, 3 * one, one)
    assert (first["eval"].steps, first["eval"].read, first["eval"].written) == (1, one, 0)
    assert rounds[2]["branch"].read == 3 * one, "round 2's branches load round 1's merge"
    assert rounds[0]["eval"].read == student


def test_bf16_branches_and_merges_are_half_the_bytes(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=1)
    data["bf16"] = True
    plan = _plan(data)
    merge = next(s for s in plan.steps if s.kind == "merge")
    assert merge.config["out_dtype"] == "bfloat16", "the merge is written in the dtype the branches train in"
    rounds = sizes.round_io(plan)
    assert rounds[1]["branch"].written == 2 * 2 * _params(toy)
    assert rounds[1]["merge"].written == 2 * _params(toy)
    data["mot"]["merge"] = {"out_dtype": "float32"}
    merge = next(s for s in _plan(data).steps if s.kind == "merge")
    assert merge.config["out_dtype"] == "float32", "an explicit out_dtype wins"


@pytest.mark.parametrize("axolotl, dtype", [
    ({"bf16": False, "fp16": False}, "float32"), ({"bf16": True}, "bfloat16"),
    ({"fp16": True, "bf16": False}, "float16"), ({"bf16": "auto"}, None), ({}, None),
])
def test_train_dtype(toy, tmp_path, axolotl, dtype):
    data = recipe_data(toy, tmp_path / "run")
    data.pop("bf16"), data.pop("fp16")
    assert parse_recipe({**data, **axolotl}).train_dtype == dtype


def test_a_hub_student_is_unknown(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=1)
    data["base_model"] = "HuggingFaceTB/SmolLM2-135M"
    assert checkpoint_io.describe(_plan(data)) == [
        "checkpoint I/O: unknown (the student is not a local safetensors checkpoint)"]


def test_plan_prints_each_rounds_bytes(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=3)
    recipe = write_recipe(tmp_path / "recipe.yaml", data)
    result = CliRunner().invoke(main, ["plan", str(recipe)])
    assert result.exit_code == 0, result.output
    one = human_bytes(4 * _params(toy))
    line = next(line for line in result.output.splitlines() if line.startswith("    rounds ") and "-3, each: " in line)
    assert "branches read 2 x " in line and f", write 2 x {one}; merge reads {human_bytes(8 * _params(toy))}, " \
        f"writes {one}: " in line
    assert "checkpoint I/O (0.8M parameters; branches save float32" in result.output


@pytest.mark.parametrize("size, expected", [("5GB", 5 * 10**9), ("500MB", 5 * 10**8), ("2GiB", 2 * 2**30),
                                            ("1000", 1000), (4096, 4096)])
def test_shard_size_goes_to_branches_and_merges_in_bytes(toy, tmp_path, size, expected):
    plan = _plan(recipe_data(toy, tmp_path / "run", rounds=1, shard_size=size))
    branch = next(s for s in plan.steps if s.kind == "branch")
    assert branch.config["mot_shard_size"] == expected
    assert plan.recipe.shard_bytes == expected


@pytest.mark.parametrize("size", ["5 gigs", "5TB", "-1", 0, "1.5GB"])
def test_a_bad_shard_size_is_refused_naming_the_key(toy, tmp_path, size):
    with pytest.raises(RecipeError, match=r"mot\.shard_size"):
        parse_recipe(recipe_data(toy, tmp_path / "run", shard_size=size))


@pytest.mark.slow
def test_merge_writes_shards_in_the_recipes_dtype_that_transformers_loads(toy, tmp_path):
    """One round of real branches and a real merge with a 100 KB shard size and bfloat16 merges: every
    branch and the merge are several shards plus an index, and transformers loads the merge."""
    data = recipe_data(toy, tmp_path / "run", rounds=1, steps=1, shard_size="100KB", keep_branches=True,
                       merge={"out_dtype": "bfloat16"})
    recipe = write_recipe(tmp_path / "recipe.yaml", data)
    result = subprocess.run([sys.executable, "-m", "mot_plugin.cli", "run", str(recipe)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / "run"
    log = (run / "round-01/merge.log").read_text()
    assert "--out-shard-size 100000" in log
    for model in (run / "round-01/branch-brief/model", run / "round-01/branch-wordy/model", run / "round-01/merged"):
        shards = sorted(model.glob("model-*.safetensors"))
        assert len(shards) > 1 and (model / "model.safetensors.index.json").is_file(), model
        assert not (model / "model.safetensors").exists()
        assert all(f.stat().st_size < 200_000 for f in shards), model
    merged = run / "round-01/merged"
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged, dtype="auto")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert set(model.state_dict()) >= set(weight_shapes(merged))
