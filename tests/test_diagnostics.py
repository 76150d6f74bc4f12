"""Merge diagnostics on crafted checkpoints named like Qwen3's: known updates give known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mot_plugin import diagnostics
from mot_plugin.diagnostics import merge_diagnostics, regime_warnings, summary, tensor_kind

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPES = {
    "model.embed_tokens.weight": (8, 4),
    "model.layers.0.self_attn.q_proj.weight": (4, 4),
    "model.layers.0.mlp.down_proj.weight": (4, 6),
    "model.layers.0.input_layernorm.weight": (4,),
}


def _student() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}


def _delta(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: 0.01 * torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}


def _save(directory: Path, tensors: dict[str, torch.Tensor], shards: int = 1) -> Path:
    """A checkpoint in `directory`: one `model.safetensors`, or `shards` files with an index."""
    directory.mkdir(parents=True)
    if shards == 1:
        save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
        return directory
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: tensors[name] for name in names[i::shards]}
        save_file(part, directory / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return directory


def _plus(tensors: dict[str, torch.Tensor], delta: dict[str, torch.Tensor], scale: float = 1.0):
    return {name: tensors[name] + scale * delta[name] for name in tensors}


def _run(tmp_path, branches: dict[str, dict], merged: dict | None = None, shards: int = 1) -> dict:
    student = _save(tmp_path / "student", _student(), shards)
    dirs = {name: _save(tmp_path / name, tensors, shards) for name, tensors in branches.items()}
    merged_dir = _save(tmp_path / "merged", merged, shards) if merged is not None else None
    return merge_diagnostics(student, dirs, merged_dir)


def test_identical_branches_agree_completely(tmp_path):
    branch = _plus(_student(), _delta())
    report = _run(tmp_path, {"a": branch, "b": branch})
    assert report["cosine"] == [{"a": "a", "b": "b", "cosine": pytest.approx(1.0)}]
    assert report["mean_cosine"] == pytest.approx(1.0)
    assert report["sign_disagreement"] == 0.0
    assert report["merged_relative_update"] is None
    assert set(report["relative_update_by_kind"]["a"]) == {"embedding", "attention", "mlp", "norm"}


def test_branches_equal_to_the_student_moved_nothing(tmp_path):
    report = _run(tmp_path, {"a": _student(), "b": _student()}, merged=_student())
    assert report["relative_update"] == {"a": 0.0, "b": 0.0}
    assert all(v == 0.0 for kinds in report["relative_update_by_kind"].values() for v in kinds.values())
    # no update has a direction: cosine and sign disagreement are undefined (None)
    assert report["cosine"] == [{"a": "a", "b": "b", "cosine": None}]
    assert report["mean_cosine"] is None and report["sign_disagreement"] is None
    assert report["merged_relative_update"] == 0.0 and report["warnings"] == []


def test_opposite_updates(tmp_path):
    student, delta = _student(), _delta()
    report = _run(tmp_path, {"up": _plus(student, delta), "down": _plus(student, delta, -1.0)}, merged=student)
    assert report["cosine"][0]["cosine"] == pytest.approx(-1.0)
    assert report["sign_disagreement"] == 1.0
    assert report["merged_relative_update"] == 0.0
    assert any("orthogonal or opposed" in w for w in report["warnings"])
    assert any("opposite directions" in w for w in report["warnings"])


def test_known_relative_update(tmp_path):
    student = _student()
    grown = {name: 1.1 * tensor for name, tensor in student.items()}
    report = _run(tmp_path, {"a": grown, "b": grown}, merged=grown)
    assert report["relative_update"]["a"] == pytest.approx(0.1, rel=1e-5)
    assert report["relative_update_by_kind"]["b"] == pytest.approx(
        {"embedding": 0.1, "attention": 0.1, "mlp": 0.1, "norm": 0.1}, rel=1e-5)
    assert report["merged_relative_update"] == pytest.approx(0.1, rel=1e-5)


def test_sign_disagreement_counts_parameters_moved_by_two_or_more(tmp_path):
    name = "model.layers.0.input_layernorm.weight"
    student = {name: torch.ones(4)}
    # parameter 0: both up (agree); 1: up and down (disagree); 2: one branch only; 3: none
    branches = {"a": {name: torch.tensor([2.0, 2.0, 1.0, 1.0])}, "b": {name: torch.tensor([3.0, 0.0, 2.0, 1.0])},
                "c": {name: torch.ones(4)}}
    dirs = {k: _save(tmp_path / k, v) for k, v in branches.items()}
    report = merge_diagnostics(_save(tmp_path / "student", student), dirs)
    assert report["sign_disagreement"] == 0.5
    assert [(c["a"], c["b"]) for c in report["cosine"]] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert report["relative_update_by_kind"]["a"] == {"norm": pytest.approx(2 ** 0.5 / 2)}


def test_sharded_and_chunked_checkpoints_give_the_same_numbers(tmp_path, monkeypatch):
    student = _student()
    branches = {"a": _plus(student, _delta(1)), "b": _plus(student, _delta(2))}
    merged = _plus(student, _delta(3))
    single = _run(tmp_path / "single", branches, merged)
    sharded = _run(tmp_path / "sharded", branches, merged, shards=2)
    assert len(list((tmp_path / "sharded/a").glob("*.safetensors"))) == 2
    monkeypatch.setattr(diagnostics, "CHUNK_ELEMENTS", 5)  # read a few rows at a time
    chunked = _run(tmp_path / "chunked", branches, merged)
    for other in (sharded, chunked):
        assert other["cosine"][0]["cosine"] == pytest.approx(single["cosine"][0]["cosine"], rel=1e-12)
        for name, kinds in single["relative_update_by_kind"].items():
            assert other["relative_update_by_kind"][name] == pytest.approx(kinds, rel=1e-12)
        assert other["sign_disagreement"] == single["sign_disagreement"]
        assert other["merged_relative_update"] == pytest.approx(single["merged_relative_update"], rel=1e-12)
    assert abs(single["cosine"][0]["cosine"]) < 0.5 and 0.3 < single["sign_disagreement"] < 0.7
    json.dumps(single)  # plain JSON


@pytest.mark.parametrize("size, warned", [(0.06, True), (0.04, False)])
def test_a_large_update_warns(tmp_path, size, warned):
    grown = {name: (1 + size) * tensor for name, tensor in _student().items()}
    report = _run(tmp_path, {"column": grown, "split": grown})
    expected = [f"branch column moved its weights by {100 * size:.1f}% of their size (> 5%): "
                "lower learning_rate or steps_per_round",
                f"branch split moved its weights by {100 * size:.1f}% of their size (> 5%): "
                "lower learning_rate or steps_per_round"]
    assert report["warnings"] == (expected if warned else [])


def test_thresholds_are_module_constants(monkeypatch):
    report = {"relative_update": {"a": 0.03}, "mean_cosine": 0.2, "sign_disagreement": 0.3}
    assert regime_warnings(report) == []
    monkeypatch.setattr(diagnostics, "MAX_RELATIVE_UPDATE", 0.02)
    monkeypatch.setattr(diagnostics, "MIN_MEAN_COSINE", 0.3)
    monkeypatch.setattr(diagnostics, "MAX_SIGN_DISAGREEMENT", 0.25)
    assert len(regime_warnings(report)) == 3


def test_shape_mismatch_and_foreign_tensors_are_clear_errors(tmp_path):
    student = _save(tmp_path / "student", _student())
    reshaped = {**_student(), "model.layers.0.mlp.down_proj.weight": torch.zeros(6, 4)}
    with pytest.raises(ValueError, match=r"branch b .*down_proj.weight has shape \[6, 4\], the student's is \[4, 6\]"):
        merge_diagnostics(student, {"a": student, "b": _save(tmp_path / "b", reshaped)})
    extra = {**_student(), "lm_head.weight": torch.zeros(8, 4)}
    with pytest.raises(ValueError, match=r"branch c .* other tensors than the student: 1 the student lacks \(lm_head.weight\)$"):
        merge_diagnostics(student, {"a": student, "c": _save(tmp_path / "c", extra)})


def test_no_full_weights_gives_none(tmp_path):
    student = _save(tmp_path / "student", _student())
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    assert merge_diagnostics(student, {"a": student, "b": adapter}) is None
    assert merge_diagnostics("Qwen/Qwen3-0.6B", {"a": student, "b": student}) is None


@pytest.mark.parametrize("name, kind", [
    ("model.embed_tokens.weight", "embedding"), ("lm_head.weight", "embedding"),
    ("model.layers.3.self_attn.k_proj.weight", "attention"), ("model.layers.3.self_attn.o_proj.bias", "attention"),
    ("model.layers.3.self_attn.q_norm.weight", "norm"), ("model.layers.3.post_attention_layernorm.weight", "norm"),
    ("model.norm.weight", "norm"), ("model.layers.3.mlp.gate_proj.weight", "mlp"),
    ("model.layers.3.mlp.up_proj.weight", "mlp"), ("model.rotary_emb.inv_freq", "other"),
])
def test_tensor_kinds(name, kind):
    assert tensor_kind(name) == kind


def test_summary_line():
    report = {"relative_update": {"a": 0.031, "b": 0.042, "c": 0.035}, "mean_cosine": 0.4123,
              "sign_disagreement": 0.381}
    assert summary(report) == "update 3.1-4.2%, cosine 0.41, sign disagreement 38%"
    undefined = {"relative_update": {"a": 0.0, "b": 0.0}, "mean_cosine": None, "sign_disagreement": None}
    assert summary(undefined) == "update 0.0%, cosine n/a, sign disagreement n/a"
