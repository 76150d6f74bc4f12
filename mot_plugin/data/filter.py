"""Filtering per-teacher corpora: duplicates, contamination, correctness against gold answers, alignment.

Each row gets one verdict, checked in this order: `duplicate` (same prompt and response as an earlier
row of the teacher), `duplicate_prompt` (same prompt, with `dedup_prompts`), `contaminated` (shares an
n-gram with an evaluation prompt, with `contamination="exclude"`), `gold_missing` / `gold_unparsable`
(no gold answer, or one that is not a number or math expression), `unparsable` (no answer can be
extracted from the response), `wrong`, or `kept`. Answers are extracted and compared exactly as
`mot eval` does (`extract_answer`, `answers_match`). With `aligned`, only prompts that every teacher
kept are written (`not_aligned` counts the rest).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from mot_plugin.data.contamination import DEFAULT_NGRAM, EvalNgrams
from mot_plugin.data.output import PartialFiles, check_output
from mot_plugin.data.rows import prompt_key, prompt_text, read_chat_rows, response_text
from mot_plugin.grading import answers_match, extract_answer, gold_answer

REPORTED = ("written", "kept", "wrong", "unparsable", "gold_unparsable", "gold_missing", "duplicate",
            "duplicate_prompt", "contaminated", "eval_overlap", "not_aligned")


@dataclass(frozen=True)
class FilterOptions:
    """What `filter_corpus` checks."""

    check_answers: bool = True
    aligned: bool = False
    dedup_prompts: bool = False
    eval_file: Path | None = None
    contamination: str = "warn"  # "warn": count overlapping rows; "exclude": also drop them
    ngram: int = DEFAULT_NGRAM
    force: bool = False  # replace existing outputs


_gold = lru_cache(maxsize=100_000)(gold_answer)


def correctness(row: dict) -> str:
    """`kept`, `wrong`, `unparsable`, `gold_missing` or `gold_unparsable` for one chat row."""
    if "answer" not in row:
        return "gold_missing"
    gold = _gold(row["answer"] if isinstance(row["answer"], (str, int, float)) else str(row["answer"]))
    if gold is None:
        return "gold_unparsable"
    predicted = extract_answer(response_text(row))
    if predicted is None:
        return "unparsable"
    return "kept" if answers_match(predicted, gold) else "wrong"


def _digest(*texts: str) -> bytes:
    return hashlib.blake2b("\0".join(texts).encode(), digest_size=16).digest()


def _verdicts(path: Path, opts: FilterOptions, eval_ngrams: EvalNgrams | None, counts: Counter) -> list[str]:
    """One verdict per row of one teacher's file (first pass; rows are streamed, only digests are kept)."""
    seen_rows: set[bytes] = set()
    seen_prompts: set[bytes] = set()
    verdicts = []
    for _, row in read_chat_rows(path):
        prompt = prompt_text(row)
        row_digest, prompt_digest = _digest(prompt, response_text(row)), _digest(prompt)
        overlap = eval_ngrams is not None and eval_ngrams.overlaps(prompt)
        if row_digest in seen_rows:
            verdict = "duplicate"
        elif opts.dedup_prompts and prompt_digest in seen_prompts:
            verdict = "duplicate_prompt"
        elif overlap and opts.contamination == "exclude":
            verdict = "contaminated"
        else:
            verdict = correctness(row) if opts.check_answers else "kept"
        counts["eval_overlap"] += overlap and verdict not in ("duplicate", "duplicate_prompt")
        seen_rows.add(row_digest)
        seen_prompts.add(prompt_digest)
        verdicts.append(verdict)
    return verdicts


def filter_corpus(files: dict[str, Path], out_dir: Path, opts: FilterOptions) -> dict:
    """Filter every teacher's file into OUT_DIR/<teacher>.jsonl; write and return `filter_report.json`."""
    inputs = [*files.values(), *([opts.eval_file] if opts.eval_file else [])]
    for path in [out_dir / f"{teacher}.jsonl" for teacher in files] + [out_dir / "filter_report.json"]:
        check_output(path, inputs, opts.force)
    eval_ngrams = EvalNgrams.from_file(opts.eval_file, opts.ngram) if opts.eval_file else None
    counts = {teacher: Counter() for teacher in files}
    verdicts = {teacher: _verdicts(path, opts, eval_ngrams, counts[teacher]) for teacher, path in files.items()}
    for teacher, marks in verdicts.items():
        counts[teacher].update(marks)

    aligned = None
    if opts.aligned:
        kept_keys = [{prompt_key(row) for (_, row), v in zip(read_chat_rows(files[t]), verdicts[t]) if v == "kept"}
                     for t in files]
        aligned = set.intersection(*kept_keys) if kept_keys else set()

    with PartialFiles(inputs, opts.force) as out:
        for teacher, path in files.items():
            out.write_text(out_dir / f"{teacher}.jsonl", "")  # a teacher left with no rows still gets its file
            for (_, row), verdict in zip(read_chat_rows(path), verdicts[teacher]):
                if verdict != "kept":
                    continue
                if aligned is not None and prompt_key(row) not in aligned:
                    counts[teacher]["not_aligned"] += 1
                    continue
                out.write_row(out_dir / f"{teacher}.jsonl", row)
                counts[teacher]["written"] += 1
        report = {
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
            "aligned_prompts": len(aligned) if aligned is not None else None,
            "teachers": {t: {"rows": len(verdicts[t]), **{k: c[k] for k in REPORTED}} for t, c in counts.items()},
        }
        out.write_text(out_dir / "filter_report.json", json.dumps(report, indent=2) + "\n")
    return report
