"""Export CHAMP (package `champ-dataset` 1.0.0): 270 competition math problems, each solved by four
real models, as one multi-teacher corpus plus a held-out evaluation file.

The prompt is the problem statement. Each teacher's response is its plain chain-of-thought solution,
from the `0-Shot` conversation (asked "Solve the following problem. Make sure to show your work before
giving the final answer.", with no hints or concepts; identical to `No C w/o H`), followed by its
one-sentence summary of the answer (the conversation's second model turn). Responses cut off at the model's length limit are skipped.
Gold answers are reduced to one verifiable value where the reference allows (see `champ_gold`);
the rest keep the reference text and count as unparsable.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from mot_plugin.data.output import PartialFiles, check_output
from mot_plugin.data.rows import DataError
from mot_plugin.grading import gold_answer

TEACHERS = {"GPT-3.5": "gpt35", "GPT-4": "gpt4", "GPT-4 Turbo": "gpt4t", "PaLM 2 Medium": "palm2m"}
CONVERSATION = "0-Shot"
_MARKED = re.compile(r"@@(.*?)@@")
_SEVERAL = re.compile(r"@@\s*(?:,|and|or)\s*@@")
_LEADING_NUMBER = re.compile(r"^(-?\d+)\b(?!\s*(?:,|and\b))")
_TRAILING_NUMBER = re.compile(r"\bis (?:equal to )?(-?\d+)$")


def _load() -> dict:
    try:
        from importlib.resources import files

        source = files("champ_dataset") / "dataset_files" / "v0.json"
    except ModuleNotFoundError:
        raise DataError("champ-dataset is not installed (pip install champ-dataset==1.0.0)") from None
    return json.loads(source.read_text(encoding="utf-8"))


def _latex_sqrt(text: str) -> str:
    """`sqrt(x)` written as `\\sqrt{x}` (balanced parentheses), so that it parses as math."""
    while (start := text.find("sqrt(")) != -1 and (start == 0 or text[start - 1] != "\\"):
        depth, i = 0, start + 4
        for i in range(start + 4, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
        else:
            return text
        text = f"{text[:start]}\\sqrt{{{text[start + 5:i]}}}{text[i + 1:]}"
    return text


def champ_gold(raw_answer: str) -> str | None:
    """One verifiable gold answer from a CHAMP reference answer (`_raw_answer`, math marked `@@...@@`), or None.

    "A, or equivalently B" gives B (else A); "A, or approximately ..." / "A (i.e., ...)" give A; several
    marked answers ("x=16 and x=81") give None; "100 (i.e., all values)", "0 is the only possible value" and
    "The limit exists and is equal to 3" give the number.
    """
    marked = _MARKED.findall(raw_answer)
    if _SEVERAL.search(raw_answer):
        return None
    if "equivalent" in raw_answer:
        candidates = marked[::-1]
    elif marked:
        candidates = marked[:1]
    else:
        plain = [m.group(1) for m in (_LEADING_NUMBER.search(raw_answer), _TRAILING_NUMBER.search(raw_answer)) if m]
        candidates = [raw_answer, *plain]
    for candidate in candidates:
        gold = gold_answer(_latex_sqrt(candidate.strip()))
        if gold is not None:
            return gold
    return None


def _solution(problem: dict, model: str) -> str | None:
    """The model's chain of thought plus its answer summary, or None if it was cut off."""
    messages = problem["conversations"][f"{model}|{CONVERSATION}"]["messages"]
    answers = [m for m in messages if m["role"] == f"Model.{model}"]
    if not answers or answers[0]["error"] or not answers[0]["text"]:
        return None
    summary = answers[1]["text"] if len(answers) > 1 and answers[1]["text"] else ""
    return f"{answers[0]['text'].strip()}\n\n{summary.strip()}".strip()


def export_champ(out_dir: Path, *, eval_fraction: float = 0.2, seed: int = 0, force: bool = False) -> dict:
    """Write OUT_DIR/all.jsonl (teacher, id, prompt, response, answer per row) and OUT_DIR/eval.jsonl
    (id, prompt, answer and the problem's category as its tag, of held-out problems, drawn from those with a
    verifiable gold answer); return counts."""
    if not 0 <= eval_fraction < 1:
        raise DataError(f"--eval-fraction must be in [0, 1), got {eval_fraction}")
    for name in ("all.jsonl", "eval.jsonl"):
        check_output(out_dir / name, force=force)
    problems = _load()["problems"]
    gold = {pid: champ_gold(p["_raw_answer"]) for pid, p in problems.items()}
    verifiable = sorted(pid for pid, g in gold.items() if g is not None)
    held_out = set(random.Random(seed).sample(verifiable, round(eval_fraction * len(verifiable))))
    counts = {"problems": len(problems), "gold_unparsable": len(problems) - len(verifiable),
              "eval": len(held_out), "train_problems": len(problems) - len(held_out),
              "rows": {name: 0 for name in TEACHERS.values()}, "truncated": {name: 0 for name in TEACHERS.values()}}
    with PartialFiles(force=force) as out:
        for pid, problem in problems.items():
            prompt = problem["_text"]
            answer = gold[pid] if gold[pid] is not None else problem["_answer"]
            if pid in held_out:
                out.write_row(out_dir / "eval.jsonl", {"id": pid, "prompt": prompt, "answer": answer,
                                                       "tags": [problem["category"].lower()]})
                continue
            for model, teacher in TEACHERS.items():
                response = _solution(problem, model)
                if response is None:
                    counts["truncated"][teacher] += 1
                    continue
                out.write_row(out_dir / "all.jsonl", {"teacher": teacher, "id": pid, "prompt": prompt,
                                                      "response": response, "answer": answer})
                counts["rows"][teacher] += 1
    return counts
