"""The merge against the I/O bound, on generated checkpoints of at least 1 GB, in one command.

Writes K random llama-shaped checkpoints (bfloat16 safetensors, as bf16 branches save them, in
shards of `--shard-size`) and measures, each in a fresh Python process that has imported torch,
safetensors and mergekit before the clock starts (as a step in mot's warm executor has):

- the I/O bound: read the K checkpoints (every shard's bytes, then safetensors `load`) and write one
  checkpoint of the same size (safetensors `save_file`, in shards of the same size);
- the merge: `mot_plugin.builtin.mergekit_merge.main` (what a merge step runs) on the merge config
  mot writes for a bf16 recipe (linear, `dtype: float32`, `out_dtype: bfloat16`), K inputs, then
  again with 2 of them: its wall and peak memory (RSS, split into anonymous memory and file pages
  mapped from the inputs);

and prints the merge wall / I/O bound ratio (target: at most 1.5). Before each measurement the
checkpoints' pages are dropped from the page cache (`posix_fadvise(DONTNEED)` after `sync`, file by
file: this machine's other users keep theirs), so both sides read from the disk the same way; neither
side calls fsync on what it writes (mergekit does not). It checks that both sides read the same K
files and wrote as many bytes, and that one merged tensor is the mean of its inputs.

    .venv/bin/python benchmarks/bench_merge.py [--work DIR] [--k 4] [--gb 1.0] [--shard-size 500MB]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, INTERMEDIATE, VOCAB, HEADS, KV_HEADS = 2048, 5632, 32000, 16, 4


def layer_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    """A Llama's weights (untied embeddings, grouped-query attention)."""
    kv = HIDDEN // HEADS * KV_HEADS
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,),
              "lm_head.weight": (VOCAB, HIDDEN)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (kv, HIDDEN),
            p + "self_attn.v_proj.weight": (kv, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN), p + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE), p + "input_layernorm.weight": (HIDDEN,),
            p + "post_attention_layernorm.weight": (HIDDEN,),
        })
    return shapes


def layers_for(gb: float) -> int:
    """The fewest layers whose bfloat16 weights hold at least `gb` GB."""
    layers = 1
    while 2 * sum(_numel(s) for s in layer_shapes(layers).values()) < gb * 1e9:
        layers += 1
    return layers


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def shard_names(shapes: dict[str, tuple[int, ...]], shard_bytes: int) -> dict[str, str]:
    """Each tensor's shard file, filling shards of at most `shard_bytes` in order (as transformers does)."""
    groups: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = 2 * _numel(shape)
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    return {name: f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
            for i, group in enumerate(groups) for name in group}


def save_sharded(tensors: dict, out: Path, shard_bytes: int) -> int:
    """Write `tensors` as safetensors shards plus `model.safetensors.index.json`; return their bytes."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    names = shard_names({k: tuple(v.shape) for k, v in tensors.items()}, shard_bytes)
    for shard in dict.fromkeys(names.values()):
        save_file({k: v for k, v in tensors.items() if names[k] == shard}, out / shard, metadata={"format": "pt"})
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                  "weight_map": names}))
    return sum(f.stat().st_size for f in out.glob("*.safetensors"))


def generate(out: Path, layers: int, seed: int, shard_bytes: int) -> int:
    """One checkpoint: a Llama config.json and random bfloat16 weights in shards."""
    import torch
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, vocab_size=VOCAB, num_hidden_layers=layers,
                num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, tie_word_embeddings=False,
                dtype="bfloat16", architectures=["LlamaForCausalLM"]).save_pretrained(out)
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
               for name, shape in layer_shapes(layers).items()}
    return save_sharded(tensors, out, shard_bytes)


def drop_cache(paths: list[Path]) -> None:
    """`sync`, then drop these files' pages from the page cache (posix_fadvise DONTNEED)."""
    os.sync()
    for root in paths:
        for f in root.rglob("*"):
            if f.is_file():
                fd = os.open(f, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


class Memory:
    """Samples this process's /proc/self/status every 10 ms: peak RSS, anonymous and file-backed."""

    def __init__(self):
        self.peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self.before = self.read()
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    @staticmethod
    def read() -> dict[str, int]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
        return fields

    def sample(self) -> None:
        while self.running:
            for key, value in self.read().items():
                self.peak[key] = max(self.peak[key], value)
            time.sleep(0.01)

    def stop(self) -> dict[str, int]:
        self.running = False
        self.thread.join()
        return {"before": self.before, "peak": self.peak}


def child(kind: str, spec: dict) -> dict:
    """In a fresh process, imports done before the clock starts: the I/O bound or one merge."""
    import mergekit.scripts.run_yaml  # noqa: F401 - imported as the warm server has
    import torch  # noqa: F401
    from safetensors.torch import load

    from mot_plugin.builtin import mergekit_merge

    inputs = [Path(p) for p in spec["inputs"]]
    out = Path(spec["out"])
    memory = Memory()
    started = time.perf_counter()
    read = 0
    if kind == "io":
        for model in inputs:
            tensors = {}
            for shard in sorted(model.glob("*.safetensors")):
                data = shard.read_bytes()  # read(), not a memory map whose pages may never be touched
                read += len(data)
                tensors.update(load(data))
                del data
        save_sharded(tensors, out, spec["shard_bytes"])
        (out / "config.json").write_bytes((inputs[-1] / "config.json").read_bytes())
    else:
        read = sum(f.stat().st_size for model in inputs for f in model.glob("*.safetensors"))
        try:
            mergekit_merge.main(spec["argv"])
        except SystemExit as exit_:
            if exit_.code:
                raise
    wall = time.perf_counter() - started
    written = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    return {"wall": wall, "read": read, "written": written, "shards": len(list(out.glob("*.safetensors"))),
            **memory.stop()}


def run_child(kind: str, spec: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(spec)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise SystemExit(f"bench_merge: the {kind} measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def merge_config(models: list[Path], shard_size: str, work: Path) -> dict:
    """The merge config mot writes for a bf16 recipe whose K branches are `models` (its own hook)."""
    from mot_plugin.builtin.mergekit_merge import mot_merge_config
    from mot_plugin.recipe import parse_recipe
    from mot_plugin.steps import BranchSpec, MergeSpec

    teachers = [{"name": f"t{i}", "datasets": [{"path": "unused.jsonl"}]} for i in range(len(models))]
    recipe = parse_recipe({"base_model": str(models[0]), "bf16": True, "mot": {
        "rounds": 1, "steps_per_round": 1, "teachers": teachers, "shard_size": shard_size, "run_dir": str(work)}})
    branches = tuple(BranchSpec(step_id=f"round-01/branch-{t.name}", round=1, teacher=t, student=str(models[0]),
                                tokenizer=str(models[0]), output_dir=m, prepared_dir=work, max_steps=1, seed=0)
                     for t, m in zip(recipe.mot.teachers, models))
    spec = MergeSpec(step_id="round-01/merge", round=1, branches=branches, student=str(models[0]), output_dir=work)
    return {"config": mot_merge_config(recipe=recipe, merge=spec), "shard_bytes": recipe.shard_bytes}


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="where the checkpoints go (default: a new directory in /tmp)")
    parser.add_argument("--k", type=int, default=4, help="checkpoints merged (default 4)")
    parser.add_argument("--gb", type=float, default=1.0, help="least size of each checkpoint in GB (default 1.0)")
    parser.add_argument("--shard-size", default="500MB", help="mot.shard_size of inputs and output (default 500MB)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints (a later run with this --work reuses them)")
    args = parser.parse_args()
    import yaml

    from mot_plugin.recipe import size_bytes

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-merge-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    layers = layers_for(args.gb)
    size = 2 * sum(_numel(s) for s in layer_shapes(layers).values())
    need = (args.k + 3) * size
    free = shutil.disk_usage(work).free
    print(f"work: {work}; {args.k} checkpoints of {gb(size)} ({layers} layers); needs {gb(need)}, {gb(free)} free")
    if free < need * 1.1:
        raise SystemExit(f"bench_merge: not enough disk in {work}: {gb(free)} free, {gb(need)} needed")
    try:
        models = [work / f"branch-{i}" for i in range(args.k)]
        started = time.perf_counter()
        for i, model in enumerate(models):
            if not (model / "model.safetensors.index.json").is_file():
                generate(model, layers, seed=i, shard_bytes=size_bytes(args.shard_size))
        print(f"generated (or found) in {time.perf_counter() - started:.1f} s")
        results = {}
        io_out = work / "io-out"
        drop_cache(models)
        results["io"] = run_child("io", {"inputs": [str(m) for m in models], "out": str(io_out),
                                         "shard_bytes": size_bytes(args.shard_size)})
        shutil.rmtree(io_out)
        for k in dict.fromkeys((args.k, 2)):
            made = merge_config(models[:k], args.shard_size, work)
            config = work / f"merge-{k}.yaml"
            config.write_text(yaml.safe_dump(made["config"], sort_keys=False))
            out = work / f"merged-{k}"
            shutil.rmtree(out, ignore_errors=True)
            argv = [str(config), str(out), "--random-seed", "42", "--out-shard-size", str(made["shard_bytes"]),
                    "--async-write", "--quiet"]  # as mot_plugin.builtin.mergekit_merge.mot_run_merge runs it
            drop_cache(models)
            results[f"merge-{k}"] = run_child("merge", {"inputs": [str(m) for m in models[:k]], "out": str(out),
                                                        "argv": argv})
            if k == args.k:
                check_mean(models, out)
            shutil.rmtree(out)
        report(results, args.k)
    finally:
        if not args.keep:  # what this script wrote; a --work directory itself stays
            for path in [*work.glob("branch-*"), *work.glob("merge-*.yaml"), *work.glob("merged-*"), work / "io-out"]:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            if not args.work:
                work.rmdir()


def check_mean(models: list[Path], merged: Path) -> None:
    """One merged tensor is the mean (float32, then bfloat16) of the inputs'."""
    import torch
    from safetensors import safe_open

    name = "model.layers.0.self_attn.k_proj.weight"

    def tensor(model: Path) -> torch.Tensor:
        index = json.loads((model / "model.safetensors.index.json").read_text())["weight_map"]
        with safe_open(model / index[name], framework="pt") as f:
            return f.get_tensor(name)

    mean = torch.stack([tensor(m).float() for m in models]).mean(0).to(torch.bfloat16)
    got = tensor(merged)
    assert got.dtype == torch.bfloat16, got.dtype
    torch.testing.assert_close(got, mean)


def report(results: dict, k: int) -> None:
    io, merge, two = results["io"], results[f"merge-{k}"], results["merge-2"]
    assert io["read"] == merge["read"], "both sides read the same K checkpoints"
    assert abs(io["written"] - merge["written"]) < 0.01 * io["written"], (io["written"], merge["written"])
    print(f"I/O bound (read {k} x {gb(io['read'] / k)}, write {gb(io['written'])} in {io['shards']} shards): "
          f"{io['wall']:.2f} s")
    print(f"merge of {k} (mergekit linear via mot_plugin.builtin.mergekit_merge, {merge['shards']} shards): "
          f"{merge['wall']:.2f} s")
    print(f"ratio merge / I/O bound: {merge['wall'] / io['wall']:.2f} (target <= 1.5)")
    for name, r in ((f"merge of {k}", merge), ("merge of 2", two), ("I/O bound", io)):
        peak, before = r["peak"], r["before"]
        print(f"peak memory, {name}: RSS {gb(peak['VmRSS'])} (anonymous {gb(peak['RssAnon'])}, file pages "
              f"{gb(peak['RssFile'])}; before it started: RSS {gb(before['VmRSS'])}, anonymous "
              f"{gb(before['RssAnon'])}); wall {r['wall']:.2f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], json.loads(sys.argv[3]))))
    else:
        main()
