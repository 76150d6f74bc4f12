"""Grading: the eval file, final answers extracted from responses, and their comparison with the gold answer.

No model is loaded here (the data tools import it); `mot_plugin.evaluate` generates and scores.

The eval file is JSON lines, one problem a line:

    {"prompt": "Tom has 12 pens and gets 30 more. How many pens now?", "answer": "42"}

- `prompt` (string, required): the user turn; it is rendered with the model's chat template
  (`add_generation_prompt=True`), or used as is when the tokenizer has none.
- `answer` (string or number, required): the gold final answer. It must parse as a number
  ("1,234", "85.0", "3/4") or as a math-verify expression ("\\frac{1}{2}"). A full solution that
  ends in `#### N` or holds a `\\boxed{...}` (a GSM8K `answer` field) is reduced to that answer.
- `tags` (list of strings, or one string; optional): the slices the problem belongs to, e.g.
  `["skill"]` or `"geometry"`. Every accuracy is then also given per tag (`evaluate.score_slices`);
  a problem may carry several tags, and one without tags counts only in the overall accuracy.

Other fields are ignored. Answers are extracted from responses by `extract_answer` and compared by
`answers_match` (exact numeric equality when both sides are numbers, math-verify otherwise).
"""

from __future__ import annotations

import math
import re
import threading
from fractions import Fraction
from pathlib import Path

from mot_plugin.errors import UserError
from mot_plugin.jsonl import read_jsonl


class EvalError(UserError):
    """A bad eval file; the message is one line naming the file and line."""


# ---------------------------------------------------------------- answers

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"answer\s+is\s*:?\s*([^\n]*)", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_STATED_RE = re.compile(rf"\b(?:is|are|was|were|equals)\s+(?:exactly\s+|only\s+)?\$?({_NUMBER})(?![\w^!])", re.I)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
_WORD_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")  # a bare word: LaTeX parses it as a product of symbols


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` with balanced braces, or None."""
    found = None
    for m in _BOXED_RE.finditer(text):
        depth, start = 1, m.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found = text[start:i].strip()
                break
    return found or None


def _clean(fragment: str) -> str | None:
    """The first number in a fragment after `####` / "the answer is", else the fragment trimmed."""
    m = _NUMBER_RE.search(fragment)
    if m:
        return m.group(0)
    frag = fragment.strip().strip("$ ").rstrip(".").strip()
    return frag or None


def _stated(text: str) -> str | None:
    """The number the closing sentence states: "There are 239 strings of length 6." -> 239."""
    last = _SENTENCE_END_RE.split(text.strip())[-1]
    m = _STATED_RE.search(last)
    return m.group(1) if m else None


def extract_answer(text: str) -> str | None:
    """The final answer in a response: last `\\boxed{}`, else `#### N`, else "the answer is X", else the
    number the closing sentence states ("there are N ...", "... is N"), else the last number."""
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed:
        return boxed
    for regex in (_HASH_RE, _ANSWER_IS_RE):
        hits = regex.findall(text)
        if hits:
            got = _clean(hits[-1])
            if got:
                return got
    stated = _stated(text)
    if stated:
        return stated
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1] if numbers else None


def _as_number(s: str) -> Fraction | None:
    """Parse "1,234", "$85.0", "3/4", "50%" as an exact Fraction; None if it is not a plain number."""
    t = s.strip().strip("$").strip()
    t = re.sub(r"^\\\$", "", t).rstrip(".").rstrip("%").strip()
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    if not re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?:/\d+)?", t):
        return None
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def _timeout() -> int | None:
    """math-verify's signal-based timeout works only in the main thread; elsewhere run without one."""
    return 5 if threading.current_thread() is threading.main_thread() else None


def _mv_parse(s: str) -> list:
    """math-verify parse of an answer string (as LaTeX first, then as a plain expression); [] if none."""
    import logging

    from math_verify import parse

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns once when the timeout is off
    for text in (f"${s}$", s):
        try:
            got = parse(text, fallback_mode="no_fallback", parsing_timeout=_timeout())
        except Exception:  # noqa: BLE001 - a bad expression is simply unparsable
            got = []
        if got:
            return got
    return []


def _gold(answer) -> str:
    """Normalise a gold answer (string or number) to a string; reduce `#### N` / `\\boxed{}` solutions."""
    s = repr(answer) if isinstance(answer, float) else str(answer)
    s = s.strip()
    if "####" in s or _BOXED_RE.search(s):
        s = extract_answer(s) or s
    return s


def _parsable(answer: str) -> bool:
    """Whether a gold answer parses as a number or as a math-verify expression (words outside LaTeX commands do not)."""
    if _as_number(answer) is not None:
        return True
    return not _WORD_RE.search(answer) and bool(_mv_parse(answer))


def gold_answer(answer) -> str | None:
    """A gold answer (string or number) normalised as `load_eval_file` does, or None if it does not parse."""
    gold = _gold(answer)
    return gold if gold and _parsable(gold) else None


def answers_match(predicted: str, gold: str) -> bool:
    """Whether a predicted answer equals the gold one: exact numeric equality, else math-verify."""
    if predicted is None or gold is None:
        return False
    predicted, gold = str(predicted).strip(), _gold(gold)
    if not predicted or not gold:
        return False
    p, g = _as_number(predicted), _as_number(gold)
    if p is not None and g is not None:
        return p == g
    from math_verify import verify

    gp, pp = _mv_parse(gold), _mv_parse(predicted)
    if not gp or not pp:
        return predicted == gold
    try:
        return bool(verify(gp, pp, timeout_seconds=_timeout()))
    except Exception:  # noqa: BLE001 - any failure to compare is a mismatch
        return False


# ---------------------------------------------------------------- eval file


def _tags(value, where: str) -> list[str]:
    """A row's `tags` as a list of distinct strings; anything else raises an `EvalError` naming `where`."""
    tags = [value] if isinstance(value, str) else value
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise EvalError(f"{where}: 'tags' must be a non-empty string or a list of them, got {str(value)[:60]!r}")
    return list(dict.fromkeys(t.strip() for t in tags))


def load_eval_file(path: str | Path) -> list[dict]:
    """Read an eval file (see the module docstring); rows come back as {"prompt": str, "answer": str,
    "tags": [str, ...]} (no tags: an empty list)."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: eval file not found")
    rows = []
    for line_no, row in read_jsonl(path, EvalError):
        for key in ("prompt", "answer"):
            if key not in row:
                raise EvalError(f"{path}:{line_no}: missing field {key!r}")
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise EvalError(f"{path}:{line_no}: 'prompt' must be a non-empty string")
        answer = row["answer"]
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise EvalError(f"{path}:{line_no}: 'answer' must be a string or a number")
        if isinstance(answer, float) and not math.isfinite(answer):
            raise EvalError(f"{path}:{line_no}: 'answer' must be finite")
        gold = _gold(answer)
        if not _parsable(gold):
            raise EvalError(f"{path}:{line_no}: gold answer {str(answer)[:60]!r} "
                            "is not a number or math expression")
        rows.append({"prompt": row["prompt"], "answer": gold,
                     "tags": _tags(row["tags"], f"{path}:{line_no}") if row.get("tags") is not None else []})
    if not rows:
        raise EvalError(f"{path}: no problems in eval file")
    return rows
