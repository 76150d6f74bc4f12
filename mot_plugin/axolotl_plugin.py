"""The Axolotl plugin that runs inside every MoT branch (listed under `plugins:` by the planner).

It declares its keys through `get_input_args` (Axolotl drops undeclared keys), counts the
non-padding tokens trained, and writes `mot_result.json` into the output directory once the final
weights are saved. The runner reads that file; `mot status` shows it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from axolotl.integrations.base import BasePlugin
from pydantic import BaseModel
from transformers import TrainerCallback

from mot_plugin.atomic import write_json
from mot_plugin.results import BranchResult
from mot_plugin.steps import RESULT_FILE


class MotBranchArgs(BaseModel):
    """Keys the planner adds to each branch config."""

    mot_step: str | None = None
    """The step id of this branch (`round-01/branch-<teacher>`)."""
    wandb_run_group: str | None = None
    """The W&B group of every branch of one MoT run. Axolotl exports each `wandb_*` key as an
    environment variable, and W&B reads `WANDB_RUN_GROUP`."""


class _TrainerState(TrainerCallback):
    """Remembers the trainer's state and when training started."""

    def __init__(self):
        self.state = None
        self.started = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()

    def on_train_end(self, args, state, control, **kwargs):
        self.state = state
        self.train_seconds = time.time() - self.started


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
