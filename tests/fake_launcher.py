"""A launcher plugin for fast runner tests: a "branch" copies its student and shifts every weight
by a number derived from the step, so results are deterministic and differ per branch. The real
Axolotl launcher is exercised by the end-to-end tests."""

from __future__ import annotations

import hashlib
import shutil
import time

from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import StepFailed

CALLS = "fake_calls.txt"
SPANS = "fake_spans.txt"
"""Each prepare and branch step's start and end time, to see how many ran at once."""


@hookimpl
def mot_prepare_data(recipe, step):
    started = time.time()
    with (recipe.run_dir / CALLS).open("a") as calls:
        calls.write(step.id + "\n")
    time.sleep(0.5)
    step.output_dir.mkdir(parents=True)
    (step.output_dir / "tokenized").write_text(step.config_path.read_text())
    _span(recipe, step, started)
    return {"prepared": str(step.output_dir)}


def _span(recipe, step, started):
    with (recipe.run_dir / SPANS).open("a") as spans:
        spans.write(f"{step.id} {started} {time.time()}\n")


@hookimpl
def mot_run_branch(recipe, step):
    from safetensors.torch import load_file, save_file

    started = time.time()
    with (recipe.run_dir / CALLS).open("a") as calls:
        calls.write(step.id + "\n")
    if recipe.mot.launch.parallel > 1:
        assert (step.spec.prepared_dir / "tokenized").is_file(), "a branch started before its data was prepared"
        time.sleep(0.5)
    if step.config.get("learning_rate") == 0.0:
        step.log_path.write_text("learning_rate 0 is a failure in this fake\n")
        raise StepFailed(f"{step.id} failed (exit code 1); see {step.log_path}")
    shift = int(hashlib.sha256(step.fingerprint.encode()).hexdigest()[:4], 16) / 65536
    shutil.copytree(step.spec.student, step.output_dir)
    weights = load_file(step.output_dir / "model.safetensors")
    save_file({k: v + shift for k, v in weights.items()}, step.output_dir / "model.safetensors",
              metadata={"format": "pt"})
    _span(recipe, step, started)
    return {"steps": step.spec.max_steps, "final_train_loss": shift, "tokens_trained": 0}


@hookimpl
def mot_evaluate(recipe, step):
    """A made-up accuracy derived from the model's weights (deterministic, differs per model)."""
    from safetensors.torch import load_file

    with (recipe.run_dir / CALLS).open("a") as calls:
        calls.write(step.id + "\n")
    weights = load_file(f"{step.spec.model}/model.safetensors")
    mean = float(sum(w.float().mean() for w in weights.values()) / len(weights))
    accuracy = round(abs(mean) * 37 % 1, 4)
    return {"accuracy": accuracy, "accuracy_std": 0.0, "unextracted": 0, "mean_response_tokens": 10.0,
            "n_problems": 8, "n_samples": 8}
