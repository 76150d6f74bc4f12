"""Input corpus shapes, and how one input row becomes chat messages.

- `prompt-response`: `{"prompt": ..., "response": ...}` (field names configurable).
- `s1k`: `{"question": ..., "thinking": ..., "attempt": ...}`; the response is the think template filled
  in (default `<think>\\n{thinking}\\n</think>\\n\\n{attempt}`). A list of thinking strings is joined.
- `openai`: `{"messages": [{"role": ..., "content": ...}, ...]}` (system, user, assistant).
- `sharegpt`: `{"conversations": [{"from": ..., "value": ...}, ...]}`; human/gpt become user/assistant,
  system is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMATS = ("prompt-response", "s1k", "openai", "sharegpt")
DEFAULT_THINK_TEMPLATE = "<think>\n{thinking}\n</think>\n\n{attempt}"
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
_OPENAI_ROLES = ("system", "user", "assistant")
_PLACEHOLDER = re.compile(r"\{(thinking|attempt)\}")


class BadRow(ValueError):
    """One input row lacks what its format needs; the message names the field (the caller adds file:line)."""


@dataclass(frozen=True)
class Fields:
    """Where a format finds its parts; None means the format's default name."""

    prompt: str | None = None
    response: str | None = None
    thinking: str = "thinking"
    think_template: str = DEFAULT_THINK_TEMPLATE

    def names(self, fmt: str) -> tuple[str, str]:
        """The (prompt, response) field names for `fmt`."""
        default = ("question", "attempt") if fmt == "s1k" else ("prompt", "response")
        return self.prompt or default[0], self.response or default[1]


def _text(row: dict, key: str) -> str:
    """A required non-empty string field."""
    if key not in row:
        raise BadRow(f"missing field {key!r}")
    value = row[key]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = "\n\n".join(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRow(f"field {key!r} must be a non-empty string")
    return value


def _turns(row: dict, key: str, role_key: str, text_key: str, roles: dict[str, str]) -> list[dict]:
    """Messages from a list of turns, with roles renamed by `roles`."""
    turns = row.get(key)
    if key not in row:
        raise BadRow(f"missing field {key!r}")
    if not isinstance(turns, list) or not turns:
        raise BadRow(f"field {key!r} must be a non-empty list of turns")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise BadRow(f"{key}[{i}] must be an object")
        for field in (role_key, text_key):
            if field not in turn:
                raise BadRow(f"missing field {key}[{i}].{field}")
        if turn[role_key] not in roles:
            raise BadRow(f"{key}[{i}].{role_key}: unknown role {turn[role_key]!r} (expected one of {sorted(roles)})")
        if not isinstance(turn[text_key], str):
            raise BadRow(f"{key}[{i}].{text_key} must be a string")
        messages.append({"role": roles[turn[role_key]], "content": turn[text_key]})
    present = {m["role"] for m in messages}
    if not {"user", "assistant"} <= present:
        raise BadRow(f"field {key!r} needs a user and an assistant turn")
    return messages


def to_messages(row: dict, fmt: str, fields: Fields) -> list[dict]:
    """The chat messages of one input row in format `fmt`; raise `BadRow` when a needed field is missing."""
    if fmt == "openai":
        return _turns(row, "messages", "role", "content", {r: r for r in _OPENAI_ROLES})
    if fmt == "sharegpt":
        return _turns(row, "conversations", "from", "value", _SHAREGPT_ROLES)
    prompt_field, response_field = fields.names(fmt)
    prompt = _text(row, prompt_field)
    if fmt == "s1k":
        thinking = _text(row, fields.thinking)
        parts = {"thinking": thinking.strip(), "attempt": _text(row, response_field).strip()}
        response = _PLACEHOLDER.sub(lambda m: parts[m.group(1)], fields.think_template)
    elif fmt == "prompt-response":
        response = _text(row, response_field)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
