"""`mot data`: converters (every input shape, bad input, streaming), filter, stats, and the real CHAMP corpus."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from mot_plugin.cli import main
from mot_plugin.data.champ import champ_gold
from mot_plugin.data.convert import chat_rows
from mot_plugin.data.formats import Fields
from mot_plugin.data.rows import DataError, response_text
from mot_plugin.grading import answers_match, extract_answer, load_eval_file

ROOT = Path(__file__).parents[1]


def mot(*args: str, code: int = 0):
    """Run `mot ARGS` in-process and check its exit code."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def chat(prompt: str, response: str, **meta) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], **meta}


# ---------------------------------------------------------------- the real CHAMP corpus


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory) -> Path:
    """A tokenizer with one token per whitespace-separated word, so lengths are word counts."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(out)
    return out


def _block(doc: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc, flags=re.S)[0].splitlines()


@pytest.fixture(scope="module")
def champ(tmp_path_factory, word_tokenizer) -> Path:
    """The worked example of docs/data.md, run as written (the student's tokenizer is a word tokenizer):
    CHAMP exported, split, the GPT-4 pair filtered and aligned, statistics."""
    doc = (ROOT / "docs" / "data.md").read_text()
    work = tmp_path_factory.mktemp("docs")
    (work / "toy").mkdir()
    (work / "toy" / "student").symlink_to(word_tokenizer)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        printed = "".join(mot(*shlex.split(line)[1:]).output for line in _block(doc, "bash"))
    finally:
        os.chdir(cwd)
    for line in _block(doc, "text"):  # what the doc says it prints (token lengths depend on the tokenizer)
        if line.strip() == "..." or line.startswith("teacher "):
            continue
        if re.match(r"\w+ +\d+ +\d+ ", line):
            fields = line.split()
            assert re.search(rf"^{fields[0]} +{fields[1]} +{fields[2]} +\S+ +{re.escape(' '.join(fields[4:]))}$",
                             printed, flags=re.M), line
        else:
            assert line in printed
    return work / "champ"


def test_champ_export_holds_out_problems(champ):
    rows = read_jsonl(champ / "all.jsonl")
    held_out = read_jsonl(champ / "eval.jsonl")
    assert len(rows) == 227 + 230 + 229 + 232  # 270 - 38 problems x 4 teachers, minus 10 truncated responses
    assert {r["teacher"] for r in rows} == {"gpt35", "gpt4", "gpt4t", "palm2m"}
    assert len({r["id"] for r in rows}) == 232
    assert not {r["id"] for r in rows} & {r["id"] for r in held_out}
    assert not {r["prompt"] for r in rows} & {r["prompt"] for r in held_out}
    assert len(load_eval_file(champ / "eval.jsonl")) == 38  # every held-out gold answer verifies
    assert {tag for r in held_out for tag in r["tags"]} == {"combinatorics", "number-theory", "polynomial",
                                                            "inequality", "sequence"}
    counts = {t: len(read_jsonl(champ / "teachers" / f"{t}.jsonl")) for t in ("gpt35", "gpt4", "gpt4t", "palm2m")}
    assert counts == {"gpt35": 227, "gpt4": 230, "gpt4t": 229, "palm2m": 232}
    first = read_jsonl(champ / "teachers" / "gpt4.jsonl")[0]
    assert first["id"] == "P_Combinatorics_1" and first["answer"] == "239"
    assert first["messages"][0]["content"].startswith("Let a string consist of digit 1, 2, 3.")
    assert first["messages"][1]["content"].endswith("is 771.")  # GPT-4's (wrong) solution and its summary


def test_champ_filter_keeps_only_verified_answers(champ):
    out = champ / "filtered"
    printed = mot("data", "filter", champ / "teachers", "--out", out, "--eval", champ / "eval.jsonl").output
    assert "warning: 16 rows share a 13-word n-gram" in printed  # CHAMP has near-duplicate problem variants
    report = json.loads((out / "filter_report.json").read_text())["teachers"]
    kept = {t: (c["kept"], c["wrong"], c["unparsable"], c["gold_unparsable"]) for t, c in report.items()}
    assert kept == {"gpt35": (27, 120, 1, 79), "gpt4": (52, 97, 1, 80), "gpt4t": (61, 89, 0, 79),
                    "palm2m": (14, 138, 0, 80)}
    for teacher, counts in report.items():
        rows = read_jsonl(out / f"{teacher}.jsonl")
        assert len(rows) == counts["written"] == counts["kept"]
        assert counts["rows"] == sum(counts[k] for k in ("kept", "wrong", "unparsable", "gold_unparsable"))
        for row in rows:
            assert answers_match(extract_answer(response_text(row)), row["answer"])
    ids = [{r["id"] for r in read_jsonl(out / f"{t}.jsonl")} for t in report]
    assert len(set.intersection(*ids)) == 3  # what `--aligned` over all four teachers would keep


def test_champ_aligned_corpus(champ):
    report = json.loads((champ / "aligned" / "filter_report.json").read_text())
    assert report["aligned_prompts"] == 40
    gpt4, gpt4t = read_jsonl(champ / "aligned" / "gpt4.jsonl"), read_jsonl(champ / "aligned" / "gpt4t.jsonl")
    assert [r["id"] for r in gpt4] == [r["id"] for r in gpt4t] and len(gpt4) == 40
    for counts in report["teachers"].values():
        assert report["aligned_prompts"] <= counts["kept"]
        assert counts["contaminated"] == counts["eval_overlap"] == 4
        assert counts["written"] + counts["not_aligned"] == counts["kept"]
    for row in gpt4 + gpt4t:
        assert answers_match(extract_answer(response_text(row)), row["answer"])


def test_champ_gold_answers():
    assert champ_gold("@@C(10, 5)@@, or equivalently @@252@@") == "252"
    assert champ_gold("@@5/14@@, or approximately 35.7%") == "5/14"
    assert champ_gold("0 is the only possible value") == "0"
    assert champ_gold("The limit exists and is equal to 3") == "3"
    assert champ_gold("@@sqrt(2)@@") == "\\sqrt{2}"
    assert champ_gold("@@x=16@@ and @@x=81@@") is None  # several answers: not one value
    assert champ_gold("1 and 19") is None
    assert champ_gold("No") is None


def test_champ_missing_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "champ_dataset", None)
    result = mot("data", "champ", tmp_path / "out", code=2)
    assert result.output == "mot: error: champ-dataset is not installed (pip install champ-dataset==1.0.0)\n"


# ---------------------------------------------------------------- input shapes


def test_prompt_response_with_own_field_names(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"q": "1+1?", "a": "2", "gold": 2, "id": 7, "other": "x"}])
    mot("data", "convert", src, tmp_path / "t.jsonl", "--prompt-field", "q", "--response-field", "a",
        "--answer-field", "gold")
    assert read_jsonl(tmp_path / "t.jsonl") == [chat("1+1?", "2", id=7, answer=2)]


def test_s1k_wraps_the_reasoning(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"question": "2+3?", "thinking": "2 and 3 make 5.", "attempt": "\\boxed{5}", "answer": "5"},
        {"question": "1+3?", "thinking": ["First 1.", "Then 3."], "attempt": "4"},
    ])
    mot("data", "convert", src, tmp_path / "a.jsonl", "--format", "s1k")
    rows = read_jsonl(tmp_path / "a.jsonl")
    assert rows[0] == chat("2+3?", "<think>\n2 and 3 make 5.\n</think>\n\n\\boxed{5}", answer="5")
    assert rows[1]["messages"][1]["content"] == "<think>\nFirst 1.\n\nThen 3.\n</think>\n\n4"
    mot("data", "convert", src, tmp_path / "b.jsonl", "--format", "s1k", "--think-template",
        "Reasoning: {thinking}\nAnswer: {attempt}")
    assert read_jsonl(tmp_path / "b.jsonl")[0]["messages"][1]["content"] == "Reasoning: 2 and 3 make 5.\nAnswer: \\boxed{5}"
    assert "must contain {attempt}" in mot("data", "convert", src, tmp_path / "c.jsonl", "--format", "s1k",
                                           "--think-template", "{thinking}", code=2).output


def test_openai_messages(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "3*3?"},
                {"role": "assistant", "content": "#### 9", "extra": 1}]
    src = write_jsonl(tmp_path / "in.jsonl", [{"messages": messages, "answer": "9"}])
    mot("data", "convert", src, tmp_path / "t.jsonl", "--format", "openai")
    assert read_jsonl(tmp_path / "t.jsonl") == [{"messages": [{"role": m["role"], "content": m["content"]}
                                                              for m in messages], "answer": "9"}]


def test_sharegpt_conversations(tmp_path):
    turns = [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "3*3?"},
             {"from": "gpt", "value": "#### 9"}]
    src = write_jsonl(tmp_path / "in.jsonl", [{"conversations": turns, "id": "p1"}])
    mot("data", "convert", src, tmp_path / "t.jsonl", "--format", "sharegpt")
    assert read_jsonl(tmp_path / "t.jsonl") == [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "3*3?"},
        {"role": "assistant", "content": "#### 9"}], "id": "p1"}]


def test_split_by_teacher_field(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"model": "r1", "prompt": "p1", "response": "a"}, {"model": "qwq", "prompt": "p1", "response": "b"},
        {"model": "r1", "prompt": "p2", "response": "c"},
    ])
    printed = mot("data", "split", src, tmp_path / "out", "--teacher-field", "model").output
    assert "r1: 2 rows" in printed and "qwq: 1 rows" in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["qwq.jsonl", "r1.jsonl"]
    assert read_jsonl(tmp_path / "out" / "r1.jsonl") == [chat("p1", "a"), chat("p2", "c")]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("fmt, row, missing", [
    ("prompt-response", {"prompt": "p"}, "missing field 'response'"),
    ("s1k", {"question": "q", "attempt": "a"}, "missing field 'thinking'"),
    ("openai", {"conversations": []}, "missing field 'messages'"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
     "missing field conversations[1].value"),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]},
     "conversations[1].from: unknown role 'bot'"),
])
def test_missing_field_names_file_line_and_key(tmp_path, fmt, row, missing):
    good = {"prompt-response": {"prompt": "p", "response": "r"},
            "s1k": {"question": "q", "thinking": "t", "attempt": "a"},
            "openai": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            "sharegpt": {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}}[fmt]
    src = write_jsonl(tmp_path / "in.jsonl", [good, row, good])
    result = mot("data", "convert", src, tmp_path / "out.jsonl", "--format", fmt, code=2)
    assert result.output.startswith(f"mot: error: {src}:2: {missing}")
    assert result.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == [src]  # no output, not even a .partial file

    result = mot("data", "convert", src, tmp_path / "out.jsonl", "--format", fmt, "--skip-bad")
    assert f"skipped 1 bad rows (first: {src}:2: {missing}" in result.output
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 2


def test_split_errors_leave_no_output(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"teacher": "a", "prompt": "p", "response": "r"},
                                              {"prompt": "p", "response": "r"}])
    result = mot("data", "split", src, tmp_path / "out", code=2)
    assert result.output == f"mot: error: {src}:2: missing field 'teacher' (format prompt-response)\n"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    write_jsonl(src, [{"teacher": "../x", "prompt": "p", "response": "r"}])
    assert "is not a safe file name" in mot("data", "split", src, tmp_path / "out", code=2).output
    src.write_text('{"teacher": "a", "prompt": "p", "response": "r"}\n{oops\n')
    assert f"{src}:2: malformed JSONL line" in mot("data", "split", src, tmp_path / "out", code=2).output
    write_jsonl(src, [{"prompt": "p"}])
    assert "no rows converted (1 bad rows skipped)" in mot("data", "split", src, tmp_path / "out", "--skip-bad",
                                                           code=2).output


# ---------------------------------------------------------------- streaming


def test_converter_reads_line_by_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n{not json at all\n")
    rows = chat_rows(src, "prompt-response", Fields())
    assert next(rows) == (None, chat("p", "r"))  # the bad last line is not read yet
    with pytest.raises(DataError, match=r"in.jsonl:2: malformed JSONL line"):
        next(rows)


def test_converter_memory_does_not_grow_with_the_file(tmp_path):
    src = tmp_path / "big.jsonl"
    row = json.dumps({"teacher": "t", "prompt": "What is 12 + 30? " * 4, "response": "12 + 30 = 42. " * 10})
    with src.open("w") as out:
        for _ in range(10_000):
            out.write(row + "\n")
    size = src.stat().st_size
    tracemalloc.start()
    mot("data", "split", src, tmp_path / "out")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size > 2_000_000 and peak < size / 4, (size, peak)
    assert (tmp_path / "out" / "t.jsonl").read_text().count("\n") == 10_000


# ---------------------------------------------------------------- filter


def test_filter_dedup_and_correctness(tmp_path):
    rows = [chat("2+2?", "#### 4", answer="4"), chat("2+2?", "#### 4", answer="4"),  # exact duplicate
            chat("2+2?", "It is 4.", answer="4"),  # same prompt, other response
            chat("3+3?", "#### 7", answer="6"), chat("4+4?", "no idea", answer="8"),
            chat("5+5?", "#### 10", answer="ten"), chat("6+6?", "#### 12")]
    src = write_jsonl(tmp_path / "a.jsonl", rows)
    mot("data", "filter", src, "--out", tmp_path / "f")
    report = json.loads((tmp_path / "f" / "filter_report.json").read_text())["teachers"]["a"]
    assert report == {"rows": 7, "written": 2, "kept": 2, "wrong": 1, "unparsable": 1, "gold_unparsable": 1,
                      "gold_missing": 1, "duplicate": 1, "duplicate_prompt": 0, "contaminated": 0,
                      "eval_overlap": 0, "not_aligned": 0}
    mot("data", "filter", src, "--out", tmp_path / "g", "--dedup-prompts", "--no-check-answers")
    kept = read_jsonl(tmp_path / "g" / "a.jsonl")
    assert [r["messages"][0]["content"] for r in kept] == ["2+2?", "3+3?", "4+4?", "5+5?", "6+6?"]


def test_filter_aligned_keys_by_id_or_prompt(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [chat("p1", "#### 1", answer=1, id="x"), chat("p2", "#### 2", answer=2),
                                           chat("p3", "#### 3", answer=3)])
    b = write_jsonl(tmp_path / "b.jsonl", [chat("p1 reworded", "#### 1", answer=1, id="x"),
                                           chat("p2", "#### 2", answer=2), chat("p3", "#### 0", answer=3)])
    printed = mot("data", "filter", a, b, "--out", tmp_path / "f", "--aligned").output
    assert "aligned prompts (kept by every teacher): 2" in printed
    assert [r["messages"][0]["content"] for r in read_jsonl(tmp_path / "f" / "a.jsonl")] == ["p1", "p2"]
    assert [r["messages"][0]["content"] for r in read_jsonl(tmp_path / "f" / "b.jsonl")] == ["p1 reworded", "p2"]
    assert json.loads((tmp_path / "f" / "filter_report.json").read_text())["teachers"]["a"]["not_aligned"] == 1


def test_contamination_warn_or_exclude(tmp_path):
    question = "Tom has twelve red pens and buys thirty more blue pens at the shop today. How many pens now?"
    src = write_jsonl(tmp_path / "a.jsonl", [chat(question.replace("Tom", "Ann"), "#### 42", answer=42),
                                             chat("Ann has 3 cats. How many paws?", "#### 12", answer=12)])
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"prompt": question, "answer": "42"}])
    result = mot("data", "filter", src, "--out", tmp_path / "warn", "--eval", evals)
    assert f"warning: 1 rows share a 13-word n-gram with {evals}" in result.output
    assert len(read_jsonl(tmp_path / "warn" / "a.jsonl")) == 2
    mot("data", "filter", src, "--out", tmp_path / "excl", "--eval", evals, "--contamination", "exclude")
    assert read_jsonl(tmp_path / "excl" / "a.jsonl") == [chat("Ann has 3 cats. How many paws?", "#### 12", answer=12)]
    report = json.loads((tmp_path / "excl" / "filter_report.json").read_text())["teachers"]["a"]
    assert (report["contaminated"], report["eval_overlap"]) == (1, 1)
    mot("data", "filter", src, "--out", tmp_path / "long", "--eval", evals, "--ngram", "20",
        "--contamination", "exclude")  # the reworded question shares no 20-word run
    assert len(read_jsonl(tmp_path / "long" / "a.jsonl")) == 2


def test_filter_rejects_non_chat_rows(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "p", "response": "r"}])
    result = mot("data", "filter", src, "--out", tmp_path / "f", code=2)
    assert result.output.startswith(f"mot: error: {src}:1: not a chat row")
    assert not (tmp_path / "f").exists() or not list((tmp_path / "f").iterdir())


# ---------------------------------------------------------------- stats


def test_stats_on_a_handmade_corpus(tmp_path, word_tokenizer):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "a.jsonl", [chat("p1", "one two #### 1", answer=1, id=1),
                                     chat("p2", "w w w w w #### 2", answer=2, id=2),
                                     chat("p3", "#### 5", answer=3, id=3),
                                     chat("p4", "w w w w w w w w w w w #### 4", answer=4, id=4)])
    write_jsonl(corpus / "b.jsonl", [chat("p1", "#### 1", id=1), chat("p3", "#### 5", id=3),
                                     chat("p9", "#### 9", id=9)])
    stats = json.loads(mot("data", "stats", corpus, "--tokenizer", word_tokenizer, "--json").output)
    a, b = stats["teachers"]["a"], stats["teachers"]["b"]
    assert a["response_tokens"] == {"min": 2, "median": 5.5, "p90": 13, "max": 13}
    assert (a["rows"], a["graded"], a["correct"], a["accuracy"]) == (4, 4, 3, 0.75)
    assert (b["rows"], b["graded"], b["accuracy"]) == (3, 0, None)  # no gold answers
    assert stats["agreement"] == {"a|b": {"shared": 2, "agree": 2, "rate": 1.0}}  # p1 (1 = 1), p3 (5 = 5)
    table = mot("data", "stats", corpus, "--tokenizer", word_tokenizer).output
    assert "75.0% (3/4)" in table and "2/5.5/13/13" in table and "a ~ b: 100.0% (2/2)" in table
