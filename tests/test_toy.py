"""The built-in toy world: what `mot toy` promises about its student, teachers and problem sets."""

from __future__ import annotations

import json

import pytest

from mot_plugin import toy


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _operands(prompt: str) -> tuple[int, int]:
    a, b = (int(w) for w in prompt.replace("?", " ").replace(".", " ").split() if w.isdigit())
    return a, b


def test_problem_sets_are_disjoint_and_the_student_never_sees_a_carry():
    train, validation, test, generic = toy.split_problems(0, 400, 300, 300, 2000)
    pairs = [{(a, b) for _, a, b in part} for part in (train, validation, test, generic)]
    assert [len(p) for p in pairs] == [400, 300, 300, 2000]
    assert all(not (pairs[i] & pairs[j]) for i in range(4) for j in range(i + 1, 4))
    assert not any(toy.carries(a, b) for _, a, b in generic)
    assert {toy.tag(a, b) for _, a, b in test} == {"skill", "kept"}


def test_teachers_are_strong_and_each_has_one_systematic_mistake():
    train, _, _, _ = toy.split_problems(0, 400, 0, 0, 0)
    for name, solve in toy.SOLVERS.items():
        right = [toy.answer_of(solve(a, b)) == a + b for _, a, b in train]
        assert sum(right) / len(right) >= 0.85, name
        # without its mistake every teacher is always right: the mistake is the only error
        assert all(toy.answer_of(solve(a, b, mistakes=False)) == a + b for _, a, b in train)
    # the mistakes are systematic: the same condition always gives a wrong answer
    assert all(toy.answer_of(toy.brief(a, b)) != a + b for a in range(10, 100) for b in range(10, 100)
               if a % 10 + b % 10 == 10)
    assert all(toy.answer_of(toy.wordy(a, b)) != a + b for a in range(10, 100) for b in range(10, 100)
               if a // 10 == b // 10)
    assert all(toy.answer_of(toy.tensfirst(a, b)) != a + b for a in range(10, 100) for b in range(10, 100)
               if b % 10 == 0)


def test_general_corpus_speaks_every_teachers_language_without_mistakes():
    _, _, _, generic = toy.split_problems(0, 0, 0, 0, 400)
    rows = toy.pretraining_rows(generic, seed=0)
    responses = [r["messages"][1]["content"] for r in rows]
    starts = {"sum ", "First the ones", "Tens "}
    assert all(any(r.startswith(s) for s in starts) or r[0].isdigit() for r in responses)
    assert all(sum(r.startswith(s) for r in responses) > 50 for s in starts)
    assert all(toy.answer_of(r) == a + b for r, (_, a, b) in zip(responses, generic))


def test_toy_writes_tagged_validation_and_test_splits(tmp_path):
    paths = toy.make_toy(tmp_path, n_train=8, n_val=20, n_eval=30, n_pretrain=8, pretrain_steps=0)
    val, test = _rows(paths["validation"]), _rows(paths["eval"])
    assert (len(val), len(test)) == (20, 30)
    assert not {r["prompt"] for r in val} & {r["prompt"] for r in test}
    for row in val + test:
        a, b = _operands(row["prompt"])
        assert row["answer"] == str(a + b) and row["tags"] == [toy.tag(a, b)]


@pytest.mark.slow
def test_pretrained_student_solves_what_needs_no_carry_and_not_the_rest(tmp_path):
    """The built-in student (`mot toy`'s default pretraining): >= 95% of the held-out problems without a
    carry, almost none of those with one (about 80 s on 2 cores)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mot_plugin import toytrain

    paths = toy.make_toy(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(paths["student"])
    tok = AutoTokenizer.from_pretrained(paths["student"])
    rows = _rows(paths["eval"])
    right = toytrain.correct(model, tok, rows, max_new_tokens=80)
    by_tag = {t: [ok for ok, r in zip(right, rows) if r["tags"] == [t]] for t in ("kept", "skill")}
    assert sum(by_tag["kept"]) / len(by_tag["kept"]) >= 0.95
    assert sum(by_tag["skill"]) / len(by_tag["skill"]) <= 0.05
