"""Corpus statistics per teacher: rows, response length in student tokens, accuracy against gold
answers, and how often teachers' final answers agree on the prompts they share."""

from __future__ import annotations

import math
import statistics
from itertools import combinations
from pathlib import Path

from mot_plugin.data.filter import correctness
from mot_plugin.data.rows import DataError, prompt_key, read_chat_rows, response_text
from mot_plugin.grading import answers_match, extract_answer

_BATCH = 256


def _percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of sorted values."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _length_summary(lengths: list[int]) -> dict | None:
    if not lengths:
        return None
    lengths = sorted(lengths)
    return {"min": lengths[0], "median": statistics.median(lengths), "p90": _percentile(lengths, 0.9),
            "max": lengths[-1]}


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]


def _teacher_stats(path: Path, tokenizer) -> tuple[dict, dict[str, str | None]]:
    """One teacher's numbers, and its first extracted answer per prompt key."""
    lengths: list[int] = []
    batch: list[str] = []
    graded = correct = 0
    answers: dict[str, str | None] = {}
    for _, row in read_chat_rows(path):
        response = response_text(row)
        batch.append(response)
        if len(batch) == _BATCH:
            lengths += _token_counts(tokenizer, batch)
            batch = []
        answers.setdefault(prompt_key(row), extract_answer(response))
        verdict = correctness(row)
        graded += verdict in ("kept", "wrong", "unparsable")  # rows with a parsable gold answer
        correct += verdict == "kept"
    lengths += _token_counts(tokenizer, batch) if batch else []
    return {
        "rows": len(lengths),
        "prompts": len(answers),
        "response_tokens": _length_summary(lengths),
        "graded": graded,
        "correct": correct,
        "accuracy": correct / graded if graded else None,
    }, answers


def _agreement(a: dict[str, str | None], b: dict[str, str | None]) -> dict:
    """How often two teachers' final answers match, over the prompts both answered (no answer: no match)."""
    shared = a.keys() & b.keys()
    agree = sum(a[k] is not None and b[k] is not None and answers_match(a[k], b[k]) for k in shared)
    return {"shared": len(shared), "agree": agree, "rate": agree / len(shared) if shared else None}


def corpus_stats(files: dict[str, Path], tokenizer_dir: str | Path) -> dict:
    """Statistics of every teacher's file, counted in the tokens of the tokenizer in `tokenizer_dir`."""
    from transformers import AutoTokenizer

    if not any((Path(tokenizer_dir) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise DataError(f"{tokenizer_dir}: no tokenizer here (tokenizer.json or tokenizer_config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    teachers, answers = {}, {}
    for teacher, path in files.items():
        teachers[teacher], answers[teacher] = _teacher_stats(path, tokenizer)
    agreement = {f"{a}|{b}": _agreement(answers[a], answers[b]) for a, b in combinations(files, 2)}
    return {"tokenizer": str(tokenizer_dir), "teachers": teachers, "agreement": agreement}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(stats: dict) -> str:
    """The statistics as a readable plain-text table."""
    width = max([7] + [len(t) for t in stats["teachers"]])
    lines = [f"{'teacher':<{width}}  {'rows':>6}  {'prompts':>7}  "
             f"{'tokens min/median/p90/max':>27}  {'accuracy':>18}"]
    for teacher, s in stats["teachers"].items():
        t = s["response_tokens"]
        tokens = f"{t['min']}/{t['median']:g}/{t['p90']}/{t['max']}" if t else "-"
        accuracy = f"{_pct(s['accuracy'])} ({s['correct']}/{s['graded']})" if s["graded"] else "-"
        lines.append(f"{teacher:<{width}}  {s['rows']:>6}  {s['prompts']:>7}  {tokens:>27}  {accuracy:>18}")
    if stats["agreement"]:
        lines += ["", "final-answer agreement over shared prompts:"]
        for pair, a in stats["agreement"].items():
            first, second = pair.split("|")
            lines.append(f"  {first} ~ {second}: {_pct(a['rate'])} ({a['agree']}/{a['shared']})")
    lines.append(f"(tokens: response length in {stats['tokenizer']} tokens)")
    return "\n".join(lines)
