"""Accuracy of a student on a held-out math file: generate responses, grade them (`mot_plugin.grading`).

The eval file's format is described in `mot_plugin.grading`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from mot_plugin.atomic import write_json
from mot_plugin.grading import EvalError, answers_match, extract_answer, load_eval_file
from mot_plugin.recipe import Eval
from mot_plugin.results import EvalMetrics, SliceMetrics


# ---------------------------------------------------------------- generation


def _generate(model_dir, prompts, *, n, batch_size, max_new_tokens, temperature, device=None, seed=0):
    """Generate n responses per prompt; return (texts per prompt, generated-token counts per prompt)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if n < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n, batch_size and max_new_tokens must be >= 1")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sample = n > 1 or temperature > 0
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if (Path(model_dir) / "adapter_config.json").is_file():  # an adapter branch: its student plus the adapter
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(model_dir), dtype="auto").merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype="auto")
    model = model.to(device).eval()

    if tok.chat_template:
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                         add_generation_prompt=True) for p in prompts]
        special = False  # the template writes BOS itself
    else:
        texts, special = list(prompts), True
    eos = model.generation_config.eos_token_id or tok.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=n, pad_token_id=tok.pad_token_id,
                  eos_token_id=list(eos_ids) or None)
    if sample:  # plain sampling at `temperature` (1.0 when n > 1 and temperature is 0)
        kwargs.update(do_sample=True, temperature=temperature if temperature > 0 else 1.0, top_p=1.0, top_k=0)
    else:  # the saved generation_config may say do_sample: true (Axolotl writes that)
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    outs: list = [None] * len(texts)
    counts: list = [None] * len(texts)
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True,
                      add_special_tokens=special).to(device)
            gen = model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1]:].cpu()
            for row, ids in enumerate(gen.tolist()):
                stop = next((j + 1 for j, t in enumerate(ids) if t in eos_ids), len(ids))
                i = idx[row // n]
                outs[i] = (outs[i] or []) + [tok.decode(ids[:stop], skip_special_tokens=True)]
                counts[i] = (counts[i] or []) + [stop]
    del model
    return outs, counts


def generate(model_dir, prompts, *, n=1, batch_size=16, max_new_tokens=128, temperature=0.0, device=None,
             seed=0) -> list[list[str]]:
    """n responses per prompt from the model in model_dir (its chat template, left padding, batched).

    Greedy when n == 1 and temperature == 0; otherwise plain sampling (top-k/top-p off) at
    `temperature` (1.0 if it is 0) with torch seeded by `seed`. device: "cuda" if available, else "cpu".
    """
    return _generate(model_dir, list(prompts), n=n, batch_size=batch_size, max_new_tokens=max_new_tokens,
                     temperature=temperature, device=device, seed=seed)[0]


# ---------------------------------------------------------------- evaluation


def _generate_vllm(model_dir, prompts, *, n, batch_size, max_new_tokens, temperature, device=None, seed=0):
    """The same contract as `_generate`, with vLLM (not installed or tested on the CPU machines)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise EvalError("eval backend vllm: vllm is not installed (pip install vllm)") from None
    sample = n > 1 or temperature > 0
    params = SamplingParams(n=n, temperature=(temperature or 1.0) if sample else 0.0, max_tokens=max_new_tokens,
                            seed=seed)
    results = LLM(model=str(model_dir), seed=seed).chat([[{"role": "user", "content": p}] for p in prompts], params)
    return ([[o.text for o in r.outputs] for r in results], [[len(o.token_ids) for o in r.outputs] for r in results])


def accuracy(correct: list[list[bool]]) -> float:
    """Mean over problems of the fraction of correct samples (`correct`: each problem's verdicts)."""
    return sum(sum(marks) / len(marks) for marks in correct) / len(correct)


def score_slices(tags: list[list[str]], correct: list[list[bool]]) -> dict[str, SliceMetrics]:
    """Accuracy per tag over the problems carrying it (`tags` and `correct` per problem, in the same
    order), tags in sorted order; empty when no problem has tags. Any evaluation of an eval file
    (the test set's, a validation split's) scores its slices here."""
    if len(tags) != len(correct):
        raise ValueError(f"tags of {len(tags)} problems for verdicts of {len(correct)}")
    slices = {}
    for tag in sorted({t for problem in tags for t in problem}):
        marks = [c for problem, c in zip(tags, correct) if tag in problem]
        slices[tag] = SliceMetrics(accuracy=accuracy(marks), n_problems=len(marks))
    return slices


def evaluate(model_dir, settings: Eval, *, samples_path: Path | None = None, generator=None) -> EvalMetrics:
    """Accuracy of the model in model_dir on `settings.data` (the first `settings.limit` problems),
    `settings.samples` samples each: greedy with one sample, else sampled at `settings.temperature`.
    With `samples_path`, every response is written there as JSON lines with its extracted answer and verdict.
    `generator` (default: transformers) is an eval backend's `generate` with its settings bound.
    """
    t0 = time.perf_counter()
    rows = load_eval_file(settings.data)[:settings.limit]
    n = settings.samples
    generator = generator or backend_generator(settings)
    texts, counts = generator(model_dir, [r["prompt"] for r in rows], n=n, batch_size=settings.batch_size,
                              max_new_tokens=settings.max_new_tokens, temperature=settings.temperature if n > 1 else 0.0)
    correct, unextracted, samples = [], 0, []
    for number, (row, responses) in enumerate(zip(rows, texts)):
        marks = []
        for k, text in enumerate(responses):
            pred = extract_answer(text)
            unextracted += pred is None
            marks.append(pred is not None and answers_match(pred, row["answer"]))
            samples.append({"problem": number, "sample": k, "prompt": row["prompt"], "gold": row["answer"],
                            "tags": row["tags"], "response": text, "extracted": pred, "correct": marks[-1]})
        correct.append(marks)
    if samples_path is not None:
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        samples_path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    per_set = [sum(c[k] for c in correct) / len(correct) for k in range(n)]
    mean = sum(per_set) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in per_set) / n) if n > 1 else 0.0
    tokens = [c for per in counts for c in per]
    return EvalMetrics(accuracy=accuracy(correct), accuracy_std=std, n_problems=len(rows), n_samples=n,
                       mean_response_tokens=sum(tokens) / len(tokens), unextracted=unextracted,
                       slices=score_slices([r["tags"] for r in rows], correct), seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- entry points


def backend_generator(settings: Eval):
    """The `generate` of the eval backend `settings.backend` names, from the registry of the
    built-ins and installed plugins (and of the recipe's `plugins`, an extra key of the step's eval
    config, when it is none of theirs), with its settings block (`settings.<backend>`) bound."""
    from functools import partial

    from mot_plugin.plugins import plugin_manager
    from mot_plugin.registry import EvalBackend, collect, validated

    extra = settings.model_extra or {}
    registry = collect(plugin_manager().hook)
    if settings.backend not in registry.entries[EvalBackend] and extra.get("plugins"):
        registry = collect(plugin_manager(extra["plugins"]).hook)
    backend = registry.get(EvalBackend, settings.backend, "eval.backend")
    options = validated(backend.settings, extra.get(backend.name), f"eval.{backend.name}")
    return partial(backend.generate, settings=options)


def run_eval(settings: dict, out_dir: Path | None = None) -> EvalMetrics:
    """Evaluate as `settings` say (`model` and the `mot.eval` fields, defaults from `recipe.Eval`);
    with `out_dir`, write `samples.jsonl` and `metrics.json` there."""
    fields = {key: value for key, value in settings.items() if key != "model"}
    metrics = evaluate(settings["model"], Eval.model_validate(fields),
                       samples_path=out_dir / "samples.jsonl" if out_dir else None)
    if out_dir is not None:
        write_json(out_dir / "metrics.json", metrics.model_dump(mode="json"))
    return metrics


def main(argv: list[str] | None = None) -> None:
    """`python -m mot_plugin.evaluate EVAL_YAML OUT_DIR`: what the built-in evaluation step runs."""
    import sys

    import yaml

    config_path, out_dir = argv or sys.argv[1:]
    metrics = run_eval(yaml.safe_load(Path(config_path).read_text()), Path(out_dir))
    print(metrics.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
