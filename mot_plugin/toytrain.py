"""A plain PyTorch training loop for the toy student: pretraining in `mot toy`, and the in-process
miniature of MoT that benchmarks/sweep_regime.py runs (same model, data and optimizer as the recipe,
without Axolotl's per-step start-up).

Supervised fine-tuning on chat rows with the loss on the assistant's tokens only (Axolotl's
`train_on_inputs: false`), AdamW, linear warm-up then cosine decay to 0 (Axolotl's `cosine`).
"""

from __future__ import annotations

import math
import random


def encode(tok, rows: list[dict]) -> list[tuple[list[int], int]]:
    """Token ids of each chat row and where its assistant turn starts."""
    out = []
    for row in rows:
        user = row["messages"][:1]
        prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(row["messages"], tokenize=False)
        ids = tok(full, add_special_tokens=False)["input_ids"]
        out.append((ids, len(tok(prompt, add_special_tokens=False)["input_ids"])))
    return out


def _batch(encoded: list[tuple[list[int], int]], pad: int):
    import torch

    width = max(len(ids) for ids, _ in encoded)
    inputs = torch.full((len(encoded), width), pad, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (ids, start) in enumerate(encoded):
        inputs[i, :len(ids)] = torch.tensor(ids)
        labels[i, start:len(ids)] = torch.tensor(ids[start:])
        mask[i, :len(ids)] = 1
    return inputs, labels, mask


def train(model, tok, rows: list[dict], *, steps: int, lr: float, batch_size: int = 32, warmup: int = 5,
          seed: int = 0) -> list[float]:
    """`steps` optimizer steps of SFT on `rows` (fresh AdamW, warm-up then cosine); the losses."""
    import torch

    encoded = encode(tok, rows)
    order: list[int] = []
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            if len(order) < batch_size:
                more = list(range(len(encoded)))
                rng.shuffle(more)
                order += more
            picked, order = order[:batch_size], order[batch_size:]
            inputs, labels, mask = _batch([encoded[i] for i in picked], tok.pad_token_id)
            loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    model.eval()
    return losses


def pretrain(model, tok, rows: list[dict], *, steps: int, seed: int = 0, lr: float = 3e-3) -> list[float]:
    """Pretrain the toy student on its general corpus (`toy.pretraining_rows`), stopped after `steps`."""
    return train(model, tok, rows, steps=steps, lr=lr, warmup=20, seed=seed)


def answers(model, tok, prompts: list[str], *, max_new_tokens: int = 64, batch_size: int = 150) -> list[str]:
    """Greedy responses of an in-memory model (the chat template, left padding, batched)."""
    import torch

    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def correct(model, tok, problems: list[dict], **kwargs) -> list[bool]:
    """Per held-out problem (`prompt`, `answer`): whether the greedy answer is right (the evaluation's
    own extraction and check)."""
    from mot_plugin.grading import answers_match, extract_answer

    responses = answers(model, tok, [p["prompt"] for p in problems], **kwargs)
    return [answers_match(extract_answer(r), p["answer"]) for r, p in zip(responses, problems)]


def average(state_dicts: list[dict], weights: list[float] | None = None) -> dict:
    """The (weighted) mean of state dicts: a linear merge."""
    weights = weights or [1.0] * len(state_dicts)
    total = sum(weights)
    return {k: sum(w * sd[k] for w, sd in zip(weights, state_dicts)) / total for k in state_dicts[0]}
