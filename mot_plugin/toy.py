"""Built-in toy setup: a tiny pretrained Qwen3 student and three arithmetic teachers in MoT's regime.

A faithful miniature of the paper's setting (docs/results.md has the sweep behind it):
- every problem is a two-digit addition word problem; the skill the teachers have and the student
  lacks is the carry;
- the student is pretrained (`toytrain.pretrain`) to convergence on a general corpus of problems
  *without* a carry, each solved by the same procedure (column addition) in a phrasing drawn from a
  neutral one and every teacher's (without their mistakes): it reads and writes every teacher's kind
  of chain of thought, solves the problems without a carry and not the others;
- the teachers share that procedure and differ the way real teachers do: phrasing, verbosity,
  order of steps, and each has its own systematic mistake (a condition under which it is always
  wrong), so no single teacher is always right and a majority is right almost everywhere;
- three disjoint problem sets besides the student's corpus: the teachers' prompts, a validation
  split (for every choice: lr, steps, rounds, merge) and the held-out test set that is only reported.
  Validation and test rows carry a tag: `skill` (needs a carry) or `kept` (does not).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from mot_plugin.errors import UserError

TEACHERS: tuple[str, ...] = ("brief", "wordy", "tensfirst")

_NAMES = ("Tom", "Ann", "Sam", "Mia", "Ben", "Eva")
_ITEMS = ("apples", "pens", "cards", "shells", "books", "coins")
_TEMPLATES = (
    "{name} has {a} {item} and gets {b} more. How many {item} now?",
    "A box has {a} {item}. {name} adds {b}. How many {item}?",
    "{name} buys {a} {item}, then {b} more. How many in all?",
)
_SPECIAL = ("<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}{{ eos_token }}"
    "{% else %}{{ raise_exception('only user and assistant roles are supported') }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _digits(a: int, b: int) -> tuple[int, int, int, int, int, int]:
    """Ones and tens digits of both operands, the ones sum and the carry."""
    ones = a % 10 + b % 10
    return a % 10, b % 10, a // 10, b // 10, ones, int(ones >= 10)


def neutral(a: int, b: int) -> str:
    """The student's pretraining chain of thought: column addition in words no teacher uses."""
    a0, b0, a1, b1, ones, carry = _digits(a, b)
    tens = a1 + b1 + carry
    return f"sum {a}+{b}: units {a0}+{b0}={ones}, tens {a1}+{b1}+{carry}={tens}, so {a + b}. #### {a + b}"


def brief(a: int, b: int, mistakes: bool = True) -> str:
    """Terse column addition. Systematic mistake: when the ones make exactly 10, no carry."""
    a0, b0, a1, b1, ones, carry = _digits(a, b)
    if mistakes and ones == 10:
        carry = 0
    tens = a1 + b1 + carry
    answer = tens * 10 + ones % 10
    return f"{a0}+{b0}={ones}; {a1}+{b1}+{carry}={tens}; #### {answer}"


def wordy(a: int, b: int, mistakes: bool = True) -> str:
    """Verbose column addition. Systematic mistake: equal tens digits get one ten too many."""
    a0, b0, a1, b1, ones, carry = _digits(a, b)
    tens = a1 + b1 + carry + (mistakes and a1 == b1)
    answer = tens * 10 + ones % 10
    return (f"First the ones: {a0} plus {b0} makes {ones}, so we write {ones % 10} and carry {carry}. "
            f"Then the tens: {a1} plus {b1} plus {carry} makes {tens}. The total is {answer}. #### {answer}")


def tensfirst(a: int, b: int, mistakes: bool = True) -> str:
    """The tens first, then the ones and the carry. Systematic mistake: a second operand ending in 0
    still gets a carry."""
    a0, b0, a1, b1, ones, carry = _digits(a, b)
    if mistakes and b0 == 0:
        carry = 1
    tens = a1 + b1 + carry
    answer = tens * 10 + ones % 10
    return f"Tens {a1}+{b1}={a1 + b1}. Ones {a0}+{b0}={ones}. Carry {carry}: {a1 + b1}+{carry}={tens}. #### {answer}"


SOLVERS: dict[str, Callable[[int, int], str]] = {"brief": brief, "wordy": wordy, "tensfirst": tensfirst}


def pretraining_rows(generic: list[tuple[str, int, int]], seed: int) -> list[dict]:
    """The student's general corpus: each problem (none with a carry) solved correctly in a phrasing
    drawn from the neutral one and the teachers' (without their mistakes)."""
    rng = random.Random(seed)
    styles = [neutral] + [lambda a, b, f=f: f(a, b, mistakes=False) for f in SOLVERS.values()]
    return [chat(prompt, rng.choice(styles)(a, b)) for prompt, a, b in generic]


def tag(a: int, b: int) -> str:
    """The slice a problem belongs to: `skill` (needs a carry: what the teachers teach) or `kept`."""
    return "skill" if carries(a, b) else "kept"


def eval_rows(held_out: list[tuple[str, int, int]]) -> list[dict]:
    """Held-out problems as eval rows (`prompt`, `answer`, `tags`)."""
    return [{"prompt": p, "answer": str(a + b), "tags": [tag(a, b)]} for p, a, b in held_out]


def answer_of(cot: str) -> int:
    """The `#### N` answer a chain of thought ends with."""
    return int(cot.rsplit("####", 1)[1])


def problems(rng: random.Random, n: int) -> list[tuple[str, int, int]]:
    """Draw n distinct operand pairs (10..99) and phrase each as a word problem."""
    if n > 90 * 90:
        raise ValueError(f"at most {90 * 90} distinct problems, asked for {n}")
    out = []
    for k in rng.sample(range(90 * 90), n):
        a, b = 10 + k // 90, 10 + k % 90
        text = rng.choice(_TEMPLATES).format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b)
        out.append((text, a, b))
    return out


def chat(prompt: str, response: str) -> dict:
    """One chat row (Axolotl `chat_template`, `field_messages: messages`)."""
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def tokenizer(texts: list[str]):
    """Train a small byte-level BPE (digits always single tokens) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=list(_SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
    )


def new_student(tok, seed: int, hidden: int = 128):
    """A randomly initialised tiny Qwen3 for this tokenizer (float32): 4 layers of width `hidden`
    (128: 0.8M parameters), 4 heads."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        **ids,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(**ids)
    return model


def carries(a: int, b: int) -> bool:
    """Whether adding a and b carries a ten."""
    return a % 10 + b % 10 >= 10


def split_problems(seed: int, n_train: int, n_val: int, n_eval: int, n_pretrain: int):
    """Disjoint problem sets: the teachers' (`n_train`), the validation split (`n_val`), the held-out
    test set (`n_eval`) and the student's pretraining (`n_pretrain`, problems without a carry only:
    the skill is left for the teachers)."""
    rng = random.Random(seed)
    drawn = problems(rng, 90 * 90)
    cuts = [n_train, n_train + n_val, n_train + n_val + n_eval]
    train, validation, test = drawn[:cuts[0]], drawn[cuts[0]:cuts[1]], drawn[cuts[1]:cuts[2]]
    generic = [p for p in drawn[cuts[2]:] if not carries(p[1], p[2])][:n_pretrain]
    return train, validation, test, generic


PRETRAIN_STEPS = 500
"""Pretraining steps of the built-in student (batch 32, lr 3e-3): enough to solve almost every
problem without a carry (docs/results.md)."""


OUTPUTS = ("data", "validation.jsonl", "eval.jsonl", "student")
"""What `make_toy` writes into its directory."""


def check_toy_dir(out_dir: str | Path, force: bool = False) -> None:
    """Refuse to replace an existing toy output (the user's files) unless `force`."""
    for name in OUTPUTS:
        path = Path(out_dir) / name
        if (path.exists() or path.is_symlink()) and not force:
            raise UserError(f"{path}: exists; pass --force to replace it")


def make_toy(out_dir: str | Path, *, n_train: int = 400, n_val: int = 300, n_eval: int = 300, n_pretrain: int = 2000,
             pretrain_steps: int = PRETRAIN_STEPS, seed: int = 0, force: bool = False) -> dict[str, Path]:
    """Write the toy student, the teacher corpora, the validation split and the held-out test file
    under out_dir; return their paths (keys `teacher:<name>`, `validation`, `eval`, `student`).

    The student is pretrained for `pretrain_steps` steps on `n_pretrain` problems without a carry
    (disjoint from the other sets, see `pretraining_rows`), so it solves the problems without a
    carry (about 55% of them) and not the others; 0 leaves it a random init.
    Everything is written into a fresh directory first and moved into place once complete; an
    existing output is refused unless `force`.
    """
    final = Path(out_dir)
    check_toy_dir(final, force)
    final.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final, prefix=".toy-partial-") as partial:
        sizes = (n_train, n_val, n_eval, n_pretrain)
        paths = _make_toy(Path(partial), sizes, pretrain_steps, seed)
        for name in OUTPUTS:
            target = final / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(Path(partial) / name, target)
    return {key: final / path.relative_to(partial) for key, path in paths.items()}


def corpus_texts(train, validation, test, generic, pretraining: list[dict]) -> list[str]:
    """Every text the toy tokenizer is trained on: all prompts, every teacher's and the student's responses."""
    texts = [p for p, _, _ in train + validation + test + generic]
    texts += [solve(a, b) for solve in SOLVERS.values() for _, a, b in train]
    return texts + [r["messages"][1]["content"] for r in pretraining]


def _make_toy(out: Path, sizes: tuple[int, int, int, int], pretrain_steps: int, seed: int) -> dict[str, Path]:
    from mot_plugin.toytrain import pretrain

    train, validation, test, generic = split_problems(seed, *sizes)
    paths: dict[str, Path] = {}
    for name in TEACHERS:
        paths[f"teacher:{name}"] = out / "data" / f"{name}.jsonl"
        _write_jsonl(paths[f"teacher:{name}"], [chat(prompt, SOLVERS[name](a, b)) for prompt, a, b in train])
    pretraining = pretraining_rows(generic, seed)
    paths["validation"], paths["eval"] = out / "validation.jsonl", out / "eval.jsonl"
    _write_jsonl(paths["validation"], eval_rows(validation))
    _write_jsonl(paths["eval"], eval_rows(test))
    tok = tokenizer(corpus_texts(train, validation, test, generic, pretraining))
    model = new_student(tok, seed)
    if pretrain_steps:
        pretrain(model, tok, pretraining, steps=pretrain_steps, seed=seed)
    paths["student"] = out / "student"
    model.save_pretrained(paths["student"])
    tok.save_pretrained(paths["student"])
    return paths
