"""Tokenized data is saved cheaply: datasets 4 saves through a pool of spawned processes whenever
Axolotl passes `num_proc` (always), and each spawned worker imports torch, transformers and Axolotl."""

from __future__ import annotations

import multiprocess
import pytest
from datasets import Dataset

from mot_plugin import axolotl_plugin
from mot_plugin.axolotl_plugin import MotBranchPlugin


def test_small_tokenized_data_is_saved_without_a_process_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(Dataset, "save_to_disk", Dataset.save_to_disk)  # undone after the test

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(multiprocess, "get_context", no_pool)
    assert MotBranchPlugin().load_datasets(cfg=None, preprocess=True) is None, "Axolotl still loads the data"
    data = Dataset.from_dict({"input_ids": [[1, 2, 3]] * 600})
    data.save_to_disk(str(tmp_path / "small"), num_proc=2, max_shard_size=None, num_shards=None)  # Axolotl's call
    assert Dataset.load_from_disk(str(tmp_path / "small"))["input_ids"] == data["input_ids"]
    monkeypatch.setattr(axolotl_plugin, "SMALL_DATA_BYTES", 0)  # large data keeps Axolotl's processes
    with pytest.raises(AssertionError, match="process pool"):
        data.save_to_disk(str(tmp_path / "large"), num_proc=2)
