"""Chat rows, the Axolotl `chat_template` shape every data command reads and writes, and the error they raise.

A row is `{"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": RESPONSE}]}`,
plus kept metadata: `id` (a prompt's identity across teachers) and `answer` (the gold final answer).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from mot_plugin.errors import UserError
from mot_plugin.jsonl import read_jsonl

TEACHER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class DataError(UserError):
    """Bad corpus input; the message is one line naming the file (and line) at fault."""


def prompt_text(row: dict) -> str:
    """The first user message."""
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


def response_text(row: dict) -> str:
    """The last assistant message."""
    return [m["content"] for m in row["messages"] if m["role"] == "assistant"][-1]


def prompt_key(row: dict) -> str:
    """What identifies a prompt across teachers: the `id` field if present, else the user message."""
    return str(row["id"]) if "id" in row else prompt_text(row)


def read_chat_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) of a chat_template file, one line at a time; raise `DataError` on a row
    without a user and an assistant message."""
    for number, row in read_jsonl(path, DataError):
        messages = row.get("messages")
        turns = messages if isinstance(messages, list) else []
        whole = all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in turns)
        if not whole or not {"user", "assistant"} <= {m["role"] for m in turns}:
            raise DataError(f"{path}:{number}: not a chat row (needs `messages`: a user and an assistant turn, "
                            "each with a string `role` and `content`)")
        yield number, row


def teacher_files(paths: list[str | Path]) -> dict[str, Path]:
    """Map teacher name (the file stem) to file, for files and directories of `*.jsonl` files."""
    found: dict[str, Path] = {}
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(given.glob("*.jsonl"))
            if not files:
                raise DataError(f"{given}: no *.jsonl files in this directory")
        elif given.is_file():
            files = [given]
        else:
            raise DataError(f"{given}: no such file or directory")
        for file in files:
            if file.stem in found:
                raise DataError(f"{file}: teacher {file.stem!r} is also {found[file.stem]}")
            found[file.stem] = file
    return found
