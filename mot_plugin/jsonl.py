"""Reading JSON Lines files with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def read_jsonl(path: Path, error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) for every non-blank line; raise `error` naming `path:line` on a
    line that is not a JSON object."""
    try:
        lines = path.open("rb")
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror})") from None
    with lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise error(f"{path}:{number}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{number}: malformed JSONL line ({err.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{number}: a JSONL row must be a JSON object")
            yield number, row
