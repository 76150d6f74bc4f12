"""Built-in toy setup: a tiny Qwen3 student and three synthetic arithmetic teachers.

Every teacher answers the same two-digit addition word problems with its own
chain-of-thought style and its own kind of mistake, so the corpora are aligned
(as in the Merge-of-Thought paper) and no single teacher is always right.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TEACHERS: tuple[str, ...] = ("column", "split", "countup")

_NAMES = ("Tom", "Ann", "Sam", "Mia", "Ben", "Eva")
_ITEMS = ("apples", "pens", "cards", "shells", "books", "coins")
_TEMPLATES = (
    "{name} has {a} {item} and gets {b} more. How many {item} now?",
    "A box has {a} {item}. {name} adds {b}. How many {item}?",
    "{name} buys {a} {item}, then {b} more. How many in all?",
)
# Per-row slip probabilities; only carries can be forgotten (about 45% of rows), so column errs ~9%.
_ERROR_RATE = {"column": 0.20, "split": 0.08, "countup": 0.08}
_SPECIAL = ("<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}{{ eos_token }}"
    "{% else %}{{ raise_exception('only user and assistant roles are supported') }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _column(a: int, b: int, slip: bool) -> str:
    """Column addition with a carry; a slip forgets the carry in the tens column."""
    ones = a % 10 + b % 10
    head = f"{a % 10}+{b % 10}={ones}"
    if ones < 10:
        tens = a // 10 + b // 10
        return f"{head}. {a // 10}+{b // 10}={tens}. #### {tens * 10 + ones}"
    tens = a // 10 + b // 10 + (not slip)
    plus = "" if slip else "+1"
    return f"{head}, write {ones % 10} carry 1. {a // 10}+{b // 10}{plus}={tens}. #### {tens * 10 + ones % 10}"


def _split(a: int, b: int, slip: bool) -> str:
    """Tens-and-ones split; a slip miscopies the second operand's ones digit."""
    if slip:
        b = b - b % 10 + (b % 10 + 1) % 10
    t, o = (a // 10 + b // 10) * 10, a % 10 + b % 10
    return f"{a // 10 * 10}+{b // 10 * 10}={t}. {a % 10}+{b % 10}={o}. {t}+{o}={t + o}. #### {t + o}"


def _countup(a: int, b: int, slip: bool) -> str:
    """Count up from the first operand by tens, then add the ones; a slip takes one ten too many."""
    steps = [a + 10 * k for k in range(b // 10 + 1 + slip)]
    last = steps[-1]
    return f"{' '.join(map(str, steps))}. {last}+{b % 10}={last + b % 10}. #### {last + b % 10}"


_SOLVERS = {"column": _column, "split": _split, "countup": _countup}


def _problems(rng: random.Random, n: int) -> list[tuple[str, int, int]]:
    """Draw n distinct operand pairs (10..99) and phrase each as a word problem."""
    if n > 90 * 90:
        raise ValueError(f"at most {90 * 90} distinct problems, asked for {n}")
    out = []
    for k in rng.sample(range(90 * 90), n):
        a, b = 10 + k // 90, 10 + k % 90
        text = rng.choice(_TEMPLATES).format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b)
        out.append((text, a, b))
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _tokenizer(texts: list[str]):
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


def _student(tokenizer, out: Path, seed: int) -> None:
    """Build a randomly initialised tiny Qwen3 and save it with the tokenizer (float32 safetensors)."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        **ids,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def make_toy(out_dir: str | Path, *, n_train: int = 600, n_eval: int = 100, seed: int = 0) -> dict[str, Path]:
    """Write the toy student, three teacher corpora and a held-out eval file under out_dir; return their paths."""
    out = Path(out_dir)
    rng = random.Random(seed)
    problems = _problems(rng, n_train + n_eval)
    train, held_out = problems[:n_train], problems[n_train:]
    paths: dict[str, Path] = {}
    texts = [p for p, _, _ in problems]
    for name in TEACHERS:
        rows = []
        for prompt, a, b in train:
            cot = _SOLVERS[name](a, b, rng.random() < _ERROR_RATE[name])
            texts.append(cot)
            rows.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": cot}]})
        paths[f"teacher:{name}"] = out / "data" / f"{name}.jsonl"
        _write_jsonl(paths[f"teacher:{name}"], rows)
    paths["eval"] = out / "eval.jsonl"
    _write_jsonl(paths["eval"], [{"prompt": p, "answer": str(a + b)} for p, a, b in held_out])
    paths["student"] = out / "student"
    _student(_tokenizer(texts), paths["student"], seed)
    return paths
