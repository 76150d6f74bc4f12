"""Axolotl's own example configs plus a `mot:` block plan as their users expect (full, LoRA and QLoRA
branches, hub and tracker keys, keys mot replaces announced); Axolotl's validation refuses bad keys
at plan time; a LoRA recipe runs for real on the CPU (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from conftest import recipe_data, write_recipe
from mot_plugin import axolotl_config
from mot_plugin.sizes import adapter_bytes
from mot_plugin.builtin.mergekit_merge import ADAPTER_METHODS
from mot_plugin.cli import main

EXAMPLES = Path(__file__).parent / "axolotl_examples"
KINDS = {
    "llama-3-lora-1b.yml": "LoRA adapters (lora_r 16)",
    "qwen3-32b-qlora.yaml": "QLoRA adapters (lora_r 16) on the round's student quantized to 4 bits",
    "qwen3-qlora-fsdp.yaml": "QLoRA adapters (lora_r 32)",
    "llama-3-fft-8b-deepspeed.yaml": "full fine-tunes",
    "lora-cpu.yml": "LoRA adapters (lora_r 4)",
}
EPOCH_KEYS = ("num_epochs", "saves_per_epoch", "evals_per_epoch", "save_steps")


def example(toy, tmp_path, name: str, **mot) -> dict:
    """An Axolotl example with a `mot:` block; its `datasets` move into the teachers (the conftest ones)."""
    data = yaml.safe_load((EXAMPLES / name).read_text())
    data.pop("datasets")
    if data["base_model"] == "toy/student":
        data["base_model"] = str(toy["student"])
    return {**data, "mot": recipe_data(toy, tmp_path / "run", **mot)["mot"]}


def plan(tmp_path, data: dict):
    result = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "recipe.yaml", data))])
    return result


def configs(run: Path, kind: str = "branch") -> dict[str, dict]:
    pattern = "**/axolotl.yaml" if kind == "branch" else "**/merge.yaml"
    return {str(p.parent.relative_to(run)): yaml.safe_load(p.read_text()) for p in sorted(run.glob(pattern))}


def teacher_names(data: dict) -> list[str]:
    return [t["name"] for t in data["mot"]["teachers"]]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_example_plans_with_its_kind_of_branch(toy, tmp_path, name):
    data = example(toy, tmp_path, name)
    result = plan(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert f"branches: {KINDS[name]}" in result.output
    run = tmp_path / "run"
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert "note: num_epochs: 1 is replaced by max_steps 3 (mot.steps_per_round)" in notes
    assert f"note: output_dir: {data['output_dir']} is replaced by each branch's own directory under mot.run_dir" in notes
    assert "note: saves_per_epoch: 1 is dropped: a branch saves only its final weights (save_strategy: no)" in notes
    for step, config in configs(run).items():
        assert config["output_dir"] == str(run / step / "model")
        assert config["save_strategy"] == "no" and config["max_steps"] == 3
        assert not set(EPOCH_KEYS) & set(config), "per-epoch schedules are replaced by max_steps"
        assert not {k for k in config if k.startswith("hub_") or k == "push_to_hub"}, "no branch pushes to the hub"
    adapters = name != "llama-3-fft-8b-deepspeed.yaml"
    for round_dir, merge in configs(run, "merge").items():
        student = data["base_model"] if round_dir == "round-01" else str(run / "round-01/merged")
        branches = [run / round_dir / f"branch-{t}/model" for t in teacher_names(data)]
        assert [m["model"] for m in merge["models"]] == [f"{student}+{b}" if adapters else str(b) for b in branches]


def test_base_model_methods_take_the_rounds_student_and_its_adapters(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml", merge={"method": "task_arithmetic"})
    assert plan(tmp_path, data).exit_code == 0
    run = tmp_path / "run"
    merge = configs(run, "merge")["round-02"]
    assert merge["base_model"] == str(run / "round-01/merged")
    assert [m["model"] for m in merge["models"]] == [
        f"{run / 'round-01/merged'}+{run / f'round-02/branch-{t}/model'}" for t in teacher_names(data)]


def test_hub_keys_stay_in_the_recipe(toy, tmp_path):
    data = example(toy, tmp_path, "qwen3-32b-qlora.yaml")
    result = plan(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert ("note: hub_model_id: username/custom_model_name is kept in recipe.yaml but given to no branch "
            "(`mot push RUN_DIR` uploads the final student)") in result.output
    assert yaml.safe_load((tmp_path / "run/recipe.yaml").read_text())["hub_model_id"] == "username/custom_model_name"
    assert not any("hub_model_id" in c for c in configs(tmp_path / "run").values())


def test_each_branch_is_its_own_tracker_run_in_one_group(toy, tmp_path):
    data = example(toy, tmp_path, "qwen3-32b-qlora.yaml", baselines=["single", "union"])
    result = plan(tmp_path, data)
    assert result.exit_code == 0, result.output
    names = teacher_names(data)
    wandb = {step: (c["wandb_name"], c["wandb_run_group"]) for step, c in configs(tmp_path / "run").items()}
    assert wandb == {
        **{f"round-0{r}/branch-{t}": (f"qwen3-32b-r0{r}-{t}", "qwen3-32b") for r in (1, 2) for t in names},
        **{f"baselines/single-{t}": (f"qwen3-32b-single-{t}", "qwen3-32b") for t in names},
        "baselines/union": ("qwen3-32b-union", "qwen3-32b"),
    }
    assert "note: W&B: each branch is its own run, qwen3-32b-r01-<teacher>" in result.output

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    recipe = write_recipe(seeds / "recipe.yaml", example(toy, seeds, "qwen3-32b-qlora.yaml"))
    assert CliRunner().invoke(main, ["plan", str(recipe), "--seed", "1", "--seed", "2"]).exit_code == 0
    config = yaml.safe_load((seeds / f"run/seed-2/round-01/branch-{names[0]}/axolotl.yaml").read_text())
    assert (config["wandb_name"], config["wandb_run_group"]) == (f"qwen3-32b-seed-2-r01-{names[0]}", "qwen3-32b-seed-2")

    other = tmp_path / "mlflow"
    other.mkdir()
    assert plan(other, example(toy, other, "qwen3-qlora-fsdp.yaml")).exit_code == 0
    runs = {step: c["mlflow_run_name"] for step, c in configs(other / "run").items()}
    assert runs == {f"round-0{r}/branch-{t}": f"qlora-fsdp-r0{r}-{t}" for r in (1, 2) for t in names}


def test_the_wandb_group_reaches_wandbs_environment(toy, tmp_path, monkeypatch):
    """Axolotl exports every `wandb_*` key the in-branch plugin declares: W&B reads WANDB_RUN_GROUP."""
    from axolotl.cli.config import load_cfg

    data = example(toy, tmp_path, "lora-cpu.yml")
    data.update(wandb_project="mot-test", wandb_mode="disabled")
    assert plan(tmp_path, data).exit_code == 0
    for key in ("WANDB_RUN_GROUP", "WANDB_NAME", "WANDB_PROJECT", "WANDB_MODE"):
        monkeypatch.setenv(key, "")  # what load_cfg exports is undone after the test
        monkeypatch.delenv(key)
    teacher = teacher_names(data)[0]
    cfg = load_cfg(str(tmp_path / f"run/round-01/branch-{teacher}/axolotl.yaml"))
    assert cfg.wandb_name == f"run-r01-{teacher}"
    assert os.environ["WANDB_RUN_GROUP"] == "run" and os.environ["WANDB_NAME"] == f"run-r01-{teacher}"


def test_only_distinct_branch_configs_are_validated(toy, tmp_path, monkeypatch):
    checked = []
    original = axolotl_config._check
    monkeypatch.setattr(axolotl_config, "_check", lambda r, b, c, f: (checked.append(b.step_id), original(r, b, c, f)))
    data = example(toy, tmp_path, "lora-cpu.yml", rounds=3)
    assert plan(tmp_path, data).exit_code == 0
    assert checked == [f"round-01/branch-{t}" for t in teacher_names(data)], "one validation per teacher"


def test_lora_model_dir_starts_round_one_only(toy, tmp_path):
    from peft import LoraConfig

    start = tmp_path / "start-adapter"
    LoraConfig(r=4, target_modules=["q_proj"]).save_pretrained(start)
    data = example(toy, tmp_path, "lora-cpu.yml")
    data["lora_model_dir"] = str(start)
    result = plan(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert f"note: lora_model_dir: {start} starts round 1 and the baselines" in result.output
    dirs = {step: c.get("lora_model_dir") for step, c in configs(tmp_path / "run").items()}
    assert {d for s, d in dirs.items() if s.startswith("round-01")} == {str(start)}
    assert {d for s, d in dirs.items() if s.startswith("round-02")} == {None}


def test_adapter_size_estimate_is_the_size_of_peft_adapter_weights(toy, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = yaml.safe_load((EXAMPLES / "lora-cpu.yml").read_text())
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(toy["student"]),
                           LoraConfig(r=config["lora_r"], target_modules=config["lora_target_modules"]))
    model.save_pretrained(tmp_path / "adapter")
    saved = load_file(tmp_path / "adapter/adapter_model.safetensors")
    assert adapter_bytes(toy["student"], config) == sum(4 * t.numel() for t in saved.values())

    result = plan(tmp_path, example(toy, tmp_path, "lora-cpu.yml"))
    disk = next(line for line in result.output.splitlines() if "disk:" in line)
    assert "each, estimated as lora_r x (in + out) float32 weights per targeted layer" in disk
    assert "copy of the student per branch, mergekit's LoRA merge cache" in disk


def test_an_adapter_branch_is_evaluated_on_its_student(toy, tmp_path):
    """Baselines (single, union) with adapters are evaluated as their student plus the adapter."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from mot_plugin.evaluate import evaluate
    from mot_plugin.recipe import Eval

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(toy["student"]),
                           LoraConfig(r=4, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path / "branch")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):  # as Axolotl leaves them
        shutil.copy(toy["student"] / name, tmp_path / "branch" / name)
    settings = Eval(data=str(toy["eval"]), limit=2, max_new_tokens=4)
    adapter, student = evaluate(tmp_path / "branch", settings), evaluate(toy["student"], settings)
    assert adapter.mean_response_tokens == student.mean_response_tokens, "B = 0: the student itself"


def test_every_adapter_method_is_a_mergekit_method():
    from mergekit.merge_methods.registry import registered_methods

    assert set(ADAPTER_METHODS) <= {m.spec.name for m in registered_methods()}


def _fails(tmp_path, data, *expected: str) -> str:
    result = plan(tmp_path, data)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()  # stdout may say what it was doing (validating with Axolotl)
    assert len(message.splitlines()) == 1 and message.startswith("mot: error: "), message
    for part in expected:
        assert part in message, message
    assert not (tmp_path / "run").exists(), "bad input must not write anything"
    return message


@pytest.mark.parametrize("where", ["shared", "teacher"])
def test_mistyped_axolotl_key(toy, tmp_path, where):
    data = example(toy, tmp_path, "lora-cpu.yml")
    target = data if where == "shared" else data["mot"]["teachers"][1].setdefault("overrides", {})
    target["learning_rat"] = 0.1
    key = "learning_rat" if where == "shared" else "mot.teachers.1.overrides.learning_rat"
    _fails(tmp_path, data, f"recipe.yaml: {key}: not an Axolotl key (did you mean learning_rate?)")


def test_wrong_type_names_the_recipe_key(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml")
    data["mot"]["teachers"][0]["overrides"] = {"micro_batch_size": "four"}
    _fails(tmp_path, data, "recipe.yaml: mot.teachers.0.overrides.micro_batch_size: ", "integer")


def test_invalid_combination(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml")
    data["adapter"] = "qlora"
    _fails(tmp_path, data, "recipe.yaml: Axolotl rejects the branch config of round-01/branch-",
           "load_in_4bit to be True for qlora")


def test_datasets_belong_to_teachers(toy, tmp_path):
    data = example(toy, tmp_path, "llama-3-lora-1b.yml")
    data["datasets"] = [{"path": "teknium/GPT4-LLM-Cleaned", "type": "alpaca"}]
    _fails(tmp_path, data, "datasets: set per branch by mot (mot.teachers[].datasets)")


def test_lora_model_dir_pointing_nowhere(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml")
    data["lora_model_dir"] = str(tmp_path / "no-adapter")
    _fails(tmp_path, data, f"recipe.yaml: lora_model_dir: {tmp_path / 'no-adapter'} does not exist")


def test_adapter_with_a_method_that_cannot_merge_adapters(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml", merge={"method": "slerp", "parameters": {"t": 0.5}})
    _fails(tmp_path, data, "recipe.yaml: mot.merge.method: slerp cannot merge lora adapter branches")


def test_unsupported_adapter(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml")
    data["adapter"] = "llama-adapter"
    _fails(tmp_path, data, "adapter: mot merges lora and qlora adapters, not 'llama-adapter'")


def test_adapter_is_shared_by_all_teachers(toy, tmp_path):
    data = example(toy, tmp_path, "llama-3-fft-8b-deepspeed.yaml")
    data["mot"]["teachers"][0]["overrides"] = {"adapter": "lora"}
    _fails(tmp_path, data, "mot.teachers.0.overrides", "'adapter' cannot be overridden per teacher")


def test_axolotl_plugin_that_cannot_be_imported(toy, tmp_path):
    data = example(toy, tmp_path, "lora-cpu.yml")
    data["plugins"] = ["no_such_module.NoSuchPlugin"]
    _fails(tmp_path, data, "plugins: cannot import Axolotl plugin 'no_such_module.NoSuchPlugin'")


def _mot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mot_plugin.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800)


def lora_updates(branch: Path) -> dict[str, torch.Tensor]:
    """B @ A x alpha / r of every adapted weight, by the student's tensor name."""
    weights = load_file(branch / "adapter_model.safetensors")
    config = json.loads((branch / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    return {name.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight"):
            weights[name.replace("lora_A", "lora_B")] @ weights[name] * scale
            for name in weights if ".lora_A." in name}


@pytest.mark.slow
def test_lora_recipe_runs_on_cpu(toy, tmp_path):
    """2 teachers x 2 rounds x 3 steps of rank-4 LoRA: each merge holds full weights, round 1's is the
    student plus the mean of the branches' updates, and merge.yaml reruns by hand to the same weights."""
    data = example(toy, tmp_path, "lora-cpu.yml", keep_branches=True)
    result = _mot("run", str(write_recipe(tmp_path / "recipe.yaml", data)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run, names = tmp_path / "run", teacher_names(data)
    student = load_file(toy["student"] / "model.safetensors")
    for round_ in ("round-01", "round-02"):
        for name in names:
            branch = run / round_ / f"branch-{name}" / "model"
            assert (branch / "adapter_model.safetensors").is_file() and not (branch / "model.safetensors").exists()
        merged = load_file(run / round_ / "merged/model.safetensors")
        assert merged.keys() == student.keys(), "the merge holds the student's full weights"
        assert (run / round_ / "merged/generation_config.json").is_file()
        assert not (run / round_ / "lora-merge-cache").exists(), "mergekit's LoRA cache is deleted"
    round_two = yaml.safe_load((run / f"round-02/branch-{names[0]}/axolotl.yaml").read_text())
    assert round_two["base_model"] == str(run / "round-01/merged")

    updates = [lora_updates(run / f"round-01/branch-{name}/model") for name in names]
    assert updates[0] and all(u.keys() == updates[0].keys() for u in updates)
    merged = load_file(run / "round-01/merged/model.safetensors")
    for tensor, weight in student.items():
        mean = sum(u.get(tensor, torch.zeros_like(weight)) for u in updates) / len(updates)
        torch.testing.assert_close(merged[tensor], weight + mean, rtol=0, atol=1e-6)
    assert any(u.abs().max() > 1e-4 for u in updates[0].values()), "the branches moved the weights"

    out, cache = tmp_path / "by-hand", tmp_path / "by-hand-cache"
    by_hand = subprocess.run([sys.executable, "-m", "mergekit.scripts.run_yaml", str(run / "round-01/merge.yaml"),
                              str(out), "--lora-merge-cache", str(cache)], capture_output=True, text=True, timeout=600)
    assert by_hand.returncode == 0, by_hand.stderr[-2000:]
    again = load_file(out / "model.safetensors")
    assert all(torch.equal(again[name], merged[name]) for name in merged)


@pytest.mark.slow
def test_every_adapter_method_merges_adapters(toy, tmp_path):
    """Each method of ADAPTER_METHODS, given `student+adapter` references of two random rank-4 LoRA
    adapters: finite full weights, with the tensors no adapter touches kept (up to float32 rounding)."""
    from mergekit.config import MergeConfiguration
    from mergekit.io.tasks import LoaderCache
    from mergekit.merge import run_merge
    from mergekit.merge_methods.registry import get
    from mergekit.options import MergeOptions
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    student = str(toy["student"])
    adapters = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(student),
                               LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.02)
        model.save_pretrained(tmp_path / f"adapter-{seed}")
        adapters.append(f"{student}+{tmp_path / f'adapter-{seed}'}")
    weights = load_file(toy["student"] / "model.safetensors")
    for method in ADAPTER_METHODS:
        spec = get(method).spec
        weighted = any(p.name == "weight" for p in spec.parameters)
        config = {"merge_method": method, "dtype": "float32",
                  "models": [{"model": a, **({"parameters": {"weight": 1.0}} if weighted else {})} for a in adapters]}
        if spec.contract.base.value == "required":
            config["base_model"] = student
        LoaderCache().loaders.clear()
        out = tmp_path / method
        run_merge(MergeConfiguration.model_validate(config), str(out),
                  MergeOptions(lora_merge_cache=str(tmp_path / f"cache-{method}"), quiet=True, random_seed=0))
        merged = load_file(out / "model.safetensors")
        assert merged.keys() == weights.keys(), method
        for name, tensor in merged.items():
            assert torch.isfinite(tensor).all(), (method, name)
            if "q_proj" not in name and "down_proj" not in name:
                torch.testing.assert_close(tensor, weights[name], rtol=1e-6, atol=1e-6, msg=f"{method}: {name}")
