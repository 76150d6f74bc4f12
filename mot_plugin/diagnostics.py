"""Merge diagnostics: how far each branch moved from the round's student, whether the branches
moved the same way, and whether the round looks like the regime where weight averaging works.

Streams over safetensors shards: one slice of one tensor from each model at a time, never two whole
models in memory. torch and safetensors are imported inside functions (the CLI imports this module).
A branch's update comes from `Checkpoint.update` alone: another kind of branch (an adapter) needs an
object with the same `update` and `check_matches`.
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

MAX_RELATIVE_UPDATE = 0.05
"""Warn when a branch moved its weights by more than this share of their norm. In a probe (DESIGN.md
section 6) branches at about 4% merged well, at 10% the merge lost most of what they learned."""
MIN_MEAN_COSINE = 0.05
"""Warn when the branches' updates are, on average, closer than this to orthogonal (or opposed):
averaging then cancels most of each branch's update."""
MAX_SIGN_DISAGREEMENT = 0.9
"""Warn when the share of parameters moved by two or more branches that were not all moved the same
way exceeds this fraction of what independent random signs give, 1 - 2^(1-K) for K branches (0.5 for
K = 2, 0.75 for K = 3): the updates then share almost no direction."""


def chance_disagreement(branches: int) -> float:
    """The sign disagreement of K independent random updates."""
    return 1 - 2.0 ** (1 - branches)

CHUNK_ELEMENTS = 1 << 22
"""Elements of one tensor read at a time from each model (large tensors are read in row slices)."""

KINDS = ("embedding", "attention", "mlp", "norm", "other")
EMBEDDING = {"embed_tokens", "lm_head"}
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
MLP = {"gate_proj", "up_proj", "down_proj"}


def tensor_kind(name: str) -> str:
    """`embedding`, `attention`, `mlp`, `norm` (any `*norm*`, q_norm and k_norm included) or `other`."""
    parts = set(name.split("."))
    if parts & EMBEDDING:
        return "embedding"
    if "norm" in name:
        return "norm"
    if parts & ATTENTION:
        return "attention"
    if parts & MLP:
        return "mlp"
    return "other"


def weight_files(model: Path) -> dict[str, Path] | None:
    """Tensor name -> safetensors file of a local checkpoint (sharded with
    `model.safetensors.index.json`, or one `model.safetensors`); None without full weights."""
    index = model / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: model / file for name, file in weight_map.items()}
    single = model / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(single, framework="pt") as handle:
            return {name: single for name in handle.keys()}
    return None


class Checkpoint:
    """A local checkpoint's full weights, read a slice of rows at a time (files opened on first use)."""

    def __init__(self, model: Path, files: dict[str, Path], stack: ExitStack):
        self.model, self.files, self.stack = model, files, stack
        self.handles: dict[Path, Any] = {}

    @classmethod
    def open(cls, model: str | Path, stack: ExitStack) -> Checkpoint | None:
        """The checkpoint in `model`, or None if it is not a local directory with full weights."""
        files = weight_files(Path(model)) if Path(model).is_dir() else None
        return cls(Path(model), files, stack) if files else None

    def _handle(self, name: str):
        from safetensors import safe_open

        file = self.files[name]
        if file not in self.handles:
            self.handles[file] = self.stack.enter_context(safe_open(file, framework="pt"))
        return self.handles[file]

    def shape(self, name: str) -> list[int]:
        return list(self._handle(name).get_slice(name).get_shape())

    def read(self, name: str, start: int, stop: int):
        """Rows `start:stop` of tensor `name` in float64 (a 0-d tensor is read whole)."""
        import torch

        if not self.shape(name):
            return self._handle(name).get_tensor(name).to(torch.float64)
        return self._handle(name).get_slice(name)[start:stop].to(torch.float64)

    def update(self, name: str, start: int, stop: int, base):
        """This branch's update of rows `start:stop` of tensor `name`: theta_k - theta_0, given
        theta_0's rows as `base`. The one place a branch's update comes from."""
        return self.read(name, start, stop) - base

    def check_matches(self, student: Checkpoint, label: str) -> None:
        """Raise ValueError unless this checkpoint has exactly the student's tensors and shapes."""
        differences = [f"{len(names)} {what} ({', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''})"
                       for what, names in (("the student lacks", self.files.keys() - student.files.keys()),
                                           ("missing", student.files.keys() - self.files.keys())) if names]
        if differences:
            raise ValueError(f"{label} ({self.model}) has other tensors than the student: {'; '.join(differences)}")
        for name in student.files:
            if self.shape(name) != student.shape(name):
                raise ValueError(f"{label} ({self.model}): tensor {name} has shape {self.shape(name)}, "
                                 f"the student's is {student.shape(name)}")


def _row_ranges(shape: list[int]) -> list[tuple[int, int]]:
    """Row ranges of at most about CHUNK_ELEMENTS elements each."""
    if not shape:
        return [(0, 1)]
    row = math.prod(shape[1:])
    step = max(1, CHUNK_ELEMENTS // max(row, 1))
    return [(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def merge_diagnostics(student: str | Path, branches: dict[str, str | Path],
                      merged: str | Path | None = None) -> dict[str, Any] | None:
    """The diagnostics of one merge (schema in docs/diagnostics.md), or None if the student or a
    branch is not a local checkpoint with full weights (a hub id, an adapter). A branch with other
    tensors or shapes than the student raises ValueError."""
    with ExitStack() as stack:
        base = Checkpoint.open(student, stack)
        opened = {name: Checkpoint.open(path, stack) for name, path in branches.items()}
        if base is None or any(b is None for b in opened.values()):
            return None
        for name, branch in opened.items():
            branch.check_matches(base, f"branch {name}")
        result = Checkpoint.open(merged, stack) if merged is not None else None
        if result is not None:
            result.check_matches(base, "the merged model")
        sums = _accumulate(base, list(opened.values()), result)
    return _report(list(opened), sums, merged=result is not None)


@dataclass
class _Sums:
    """Float64 sums over every parameter. Per kind, the Gram matrix of the rows
    [theta_0, update_1 .. update_K, merged - theta_0]: squares on its diagonal, dot products off it."""

    gram: dict[str, Any] = field(default_factory=dict)
    moved: int = 0
    """Parameters that two or more branches changed."""
    disagree: int = 0
    """Of those, the ones changed up by one branch and down by another."""


def _accumulate(base: Checkpoint, branches: list[Checkpoint], merged: Checkpoint | None) -> _Sums:
    import torch

    sums = _Sums()
    for name in base.files:
        kind = tensor_kind(name)
        for start, stop in _row_ranges(base.shape(name)):
            theta0 = base.read(name, start, stop)
            updates = torch.stack([b.update(name, start, stop, theta0).flatten() for b in branches])
            rows = [theta0.flatten().unsqueeze(0), updates]
            if merged is not None:
                rows.append(merged.update(name, start, stop, theta0).flatten().unsqueeze(0))
            stacked = torch.cat(rows)
            gram = stacked @ stacked.T
            sums.gram[kind] = sums.gram[kind] + gram if kind in sums.gram else gram
            up, down = (updates > 0).sum(0), (updates < 0).sum(0)
            sums.moved += int((up + down >= 2).sum())
            sums.disagree += int(((up > 0) & (down > 0)).sum())
    return sums


def _ratio(update_sq: float, base_sq: float) -> float | None:
    """|update| / |theta_0| from sums of squares; None if theta_0 is zero and the update is not."""
    if base_sq == 0:
        return 0.0 if update_sq == 0 else None
    return math.sqrt(update_sq / base_sq)


def _report(names: list[str], sums: _Sums, merged: bool) -> dict[str, Any]:
    kinds = [kind for kind in KINDS if kind in sums.gram]
    gram = sum(sums.gram.values()).tolist()
    square = [row[i] for i, row in enumerate(gram)]  # theta_0, the K updates, then the merge's
    cosine = []
    for i, j in combinations(range(len(names)), 2):
        norms = square[1 + i] * square[1 + j]
        value = gram[1 + i][1 + j] / math.sqrt(norms) if norms else None
        cosine.append({"a": names[i], "b": names[j], "cosine": value})
    defined = [c["cosine"] for c in cosine if c["cosine"] is not None]
    report = {
        "relative_update": {name: _ratio(square[1 + i], square[0]) for i, name in enumerate(names)},
        "relative_update_by_kind": {
            name: {kind: _ratio(float(sums.gram[kind][1 + i, 1 + i]), float(sums.gram[kind][0, 0]))
                   for kind in kinds}
            for i, name in enumerate(names)},
        "cosine": cosine,
        "mean_cosine": sum(defined) / len(defined) if defined else None,
        "sign_disagreement": sums.disagree / sums.moved if sums.moved else None,
        "merged_relative_update": _ratio(square[-1], square[0]) if merged else None,
    }
    report["warnings"] = regime_warnings(report)
    return report


def regime_warnings(report: dict[str, Any]) -> list[str]:
    """One line per sign that the round is outside the regime where weight averaging is known to
    work, each saying what to lower (thresholds: the module constants)."""
    warnings = []
    for name, update in report["relative_update"].items():
        if update is not None and update > MAX_RELATIVE_UPDATE:
            warnings.append(f"branch {name} moved its weights by {100 * update:.1f}% of their size "
                            f"(> {100 * MAX_RELATIVE_UPDATE:g}%): lower learning_rate or steps_per_round")
    cosine = report["mean_cosine"]
    if cosine is not None and cosine < MIN_MEAN_COSINE:
        warnings.append(f"the branches' updates are nearly orthogonal or opposed (mean cosine {cosine:.2f} "
                        f"< {MIN_MEAN_COSINE:g}), so averaging cancels them: lower learning_rate or "
                        f"steps_per_round")
    disagreement = report["sign_disagreement"]
    limit = MAX_SIGN_DISAGREEMENT * chance_disagreement(len(report["relative_update"]))
    if disagreement is not None and disagreement > limit:
        warnings.append(f"the branches moved {100 * disagreement:.0f}% of their shared parameters in opposite "
                        f"directions (> {100 * limit:.0f}%, {100 * MAX_SIGN_DISAGREEMENT:g}% of chance): lower learning_rate or "
                        f"steps_per_round, or try a sign-aware merge (mot.merge.method: ties, or among "
                        f"mot.merge.candidates)")
    return warnings


def summary(report: dict[str, Any]) -> str:
    """One line: `update 3.1-4.2%, cosine 0.41, sign disagreement 38%`."""
    updates = [u for u in report["relative_update"].values() if u is not None]
    low, high = (100 * min(updates), 100 * max(updates)) if updates else (None, None)
    update = "n/a" if low is None else f"{low:.1f}%" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}%"
    cosine = report["mean_cosine"]
    disagreement = report["sign_disagreement"]
    return (f"update {update}, cosine {'n/a' if cosine is None else f'{cosine:.2f}'}, "
            f"sign disagreement {'n/a' if disagreement is None else f'{100 * disagreement:.0f}%'}")
