"""The Axolotl plugin that runs inside every MoT branch (listed under `plugins:` by the planner).

It declares its keys through `get_input_args` (Axolotl drops undeclared keys), has the final
weights saved in shards of `mot_shard_size`, saves small tokenized data without a spawned process
pool, counts the non-padding tokens trained, records how far training got (`mot_progress.json`) and
writes `mot_result.json` into the output directory once the final weights are saved. The runner
reads that file; `mot status` shows it.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from axolotl.integrations.base import BasePlugin
from pydantic import BaseModel
from transformers import TrainerCallback

from mot_plugin.atomic import write_json
from mot_plugin.results import BranchResult
from mot_plugin.steps import PROGRESS_FILE, RESULT_FILE


class MotBranchArgs(BaseModel):
    """Keys the planner adds to each branch config."""

    mot_step: str | None = None
    """The step id of this branch (`round-01/branch-<teacher>`)."""
    mot_shard_size: int | None = None
    """Largest safetensors file of the saved weights, in bytes (`mot.shard_size`; transformers' own
    default is 50 GB, one file for most students)."""
    wandb_run_group: str | None = None
    """The W&B group of every branch of one MoT run. Axolotl exports each `wandb_*` key as an
    environment variable, and W&B reads `WANDB_RUN_GROUP`."""


class _TrainerState(TrainerCallback):
    """Remembers the trainer's state and when training started; records how far training got
    (`PROGRESS_FILE`, at most once a second and at the last step)."""

    def __init__(self):
        self.state = None
        self.started = self.recorded = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        last = state.global_step >= state.max_steps
        if state.is_world_process_zero and (last or time.time() - self.recorded >= PROGRESS_SECONDS):
            write_json(Path(args.output_dir) / PROGRESS_FILE, {"step": state.global_step, "max_steps": state.max_steps})
            self.recorded = time.time()

    def on_train_end(self, args, state, control, **kwargs):
        self.state = state
        self.train_seconds = time.time() - self.started


PROGRESS_SECONDS = 1.0
"""How often a branch records its progress, at most."""
SMALL_DATA_BYTES = 1 << 30
"""Tokenized data smaller than this is saved in the step's own process (see `save_small_data_in_process`)."""


def save_small_data_in_process() -> None:
    """Make `datasets.Dataset.save_to_disk` ignore `num_proc` below SMALL_DATA_BYTES.

    datasets 4 saves with a pool of *spawned* processes whenever `num_proc` is given, and Axolotl always
    gives one (a process per 256 rows, at least one). Each spawned worker starts Python and imports the
    step's main module (`axolotl.cli.preprocess` or `.train`: torch, transformers, Axolotl), 15-45 s on
    2 cores, to write a few MB: most of a `prepare/<teacher>` step's time, and `dataset_num_proc: 1`
    does not avoid it."""
    from datasets import Dataset

    original = Dataset.save_to_disk
    if getattr(original, "mot_in_process", False):
        return

    @functools.wraps(original)
    def save_to_disk(self, dataset_path, *args, num_proc=None, **kwargs):
        if num_proc is not None and self.data.nbytes < SMALL_DATA_BYTES:
            num_proc = None
        return original(self, dataset_path, *args, num_proc=num_proc, **kwargs)

    save_to_disk.mot_in_process = True
    Dataset.save_to_disk = save_to_disk


class MotBranchPlugin(BasePlugin):
    """Records the branch's result (steps, final train loss, tokens trained, runtime, the loss at every
    logged step)."""

    def __init__(self):
        super().__init__()
        self._callback = _TrainerState()
        self._process_start = time.time()

    def get_input_args(self) -> str:
        return "mot_plugin.axolotl_plugin.MotBranchArgs"

    def get_training_args(self, cfg) -> dict:
        return {"include_num_input_tokens_seen": "non_padding"}

    def load_datasets(self, cfg, preprocess: bool = False):
        # called by `axolotl preprocess` and `axolotl train` before they tokenize; None: Axolotl loads them
        save_small_data_in_process()
        return None

    def post_model_load(self, cfg, model) -> None:
        # the Trainer saves the final weights with `model.save_pretrained(dir, state_dict=...)`; an
        # adapter (a PeftModel's save_pretrained) is small and saved as PEFT saves it
        if cfg.mot_shard_size and not cfg.adapter:
            model.save_pretrained = functools.partial(model.save_pretrained, max_shard_size=cfg.mot_shard_size)

    def add_callbacks_post_trainer(self, cfg, trainer) -> list:
        return [self._callback]

    def post_train(self, cfg, model) -> None:
        # Axolotl calls post_train twice, the second time after the final weights are saved;
        # writing the same result twice is harmless.
        state = self._callback.state
        if state is None or int(os.environ.get("LOCAL_RANK", "0")) != 0:
            return
        curve = [[entry["step"], entry["loss"]] for entry in state.log_history if "loss" in entry]
        summary = next((e for e in reversed(state.log_history) if "train_loss" in e), {})
        result = BranchResult(
            step=cfg.mot_step,
            steps=state.global_step,
            final_train_loss=curve[-1][1] if curve else None,
            mean_train_loss=summary.get("train_loss"),
            tokens_trained=int(state.num_input_tokens_seen),
            train_seconds=round(self._callback.train_seconds, 2),
            process_seconds=round(time.time() - self._process_start, 2),
            loss_curve=curve,
        )
        write_json(Path(cfg.output_dir) / RESULT_FILE, result.model_dump(mode="json"))
