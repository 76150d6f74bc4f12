"""Shared fixtures: the toy student and teachers (built on the spot), and recipe writers."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")

# Shared Axolotl keys of the test recipes: CPU, tiny batches, short sequences.
SHARED = {
    "chat_template": "tokenizer_default",
    "sequence_len": 128,
    "sample_packing": False,
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 3.0e-3,
    "lr_scheduler": "cosine",
    "optimizer": "adamw_torch",
    "bf16": False,
    "fp16": False,
    "attn_implementation": "sdpa",
    "val_set_size": 0,
    "logging_steps": 1,
    "dataloader_num_workers": 0,
}


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> dict[str, Path]:
    """A tiny student and three aligned teacher corpora (64 rows each)."""
    from mot_plugin.toy import make_toy

    out = tmp_path_factory.mktemp("toy")
    return {k: Path(v).absolute() for k, v in make_toy(out, n_train=64, n_val=8, n_eval=8, pretrain_steps=0).items()}


@pytest.fixture(scope="session")
def validation(toy) -> Path:
    """A validation split for the toy: the toy's own when it writes one, else 8 problems drawn like its
    eval problems, none with an eval prompt."""
    import json
    import random

    from mot_plugin.toy import problems

    if "validation" in toy:
        return toy["validation"]
    taken = {json.loads(line)["prompt"] for line in toy["eval"].read_text().splitlines() if line.strip()}
    rows = [{"prompt": text, "answer": str(a + b)} for text, a, b in problems(random.Random(1), 40) if text not in taken]
    path = toy["eval"].with_name("validation.jsonl")
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:8]))
    return path


@pytest.fixture
def one_torch_thread():
    """One torch thread in this process while the test runs: tiny tensors gain nothing from more,
    and on a loaded machine every small op would wait for a busy core (30x slower diagnostics)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = {"plugins": ["fake_launcher", "example_plugin", "example_plugins.mean_merge"], "merge": {"executor": "mean"}}
"""`mot:` keys of fast runs: branches by tests/fake_launcher.py, merges by the example mean executor
(no Axolotl, no mergekit)."""


def recipe_data(toy: dict[str, Path], run_dir: Path, *, teachers=("brief", "wordy"), rounds=2, steps=3,
                **mot) -> dict:
    """A small recipe as data: `teachers` from the toy corpora."""
    return {
        "base_model": str(toy["student"]),
        **SHARED,
        "mot": {
            "run_dir": str(run_dir),
            "rounds": rounds,
            "steps_per_round": steps,
            "teachers": [
                {"name": name, "datasets": [{"path": str(toy[f"teacher:{name}"]), "type": "chat_template",
                                             "field_messages": "messages"}]}
                for name in teachers
            ],
            **mot,
        },
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def make_recipe(toy, tmp_path):
    """Write a recipe into tmp_path; keyword arguments go into the `mot:` block."""

    def make(name: str = "recipe.yaml", **mot) -> Path:
        return write_recipe(tmp_path / name, recipe_data(toy, tmp_path / "run", **mot))

    return make
