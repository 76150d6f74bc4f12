"""Writing output files so that partial output is never mistaken for complete: X.partial, renamed at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO


class PartialFiles:
    """JSON Lines (and other) files written as `NAME.partial`; on leaving the `with` block they are all
    renamed to NAME, or all removed if the block raised."""

    def __init__(self) -> None:
        self._files: dict[Path, IO[str]] = {}

    def _handle(self, path: Path) -> IO[str]:
        if path not in self._files:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[path] = self._partial(path).open("w", encoding="utf-8")
        return self._files[path]

    @staticmethod
    def _partial(path: Path) -> Path:
        return path.with_name(path.name + ".partial")

    def write_row(self, path: Path, row: dict) -> None:
        """Append one JSON line to `path`."""
        self._handle(path).write(json.dumps(row, ensure_ascii=False) + "\n")

    def write_text(self, path: Path, text: str) -> None:
        """Write all of `path` at once."""
        self._handle(path).write(text)

    def __enter__(self) -> PartialFiles:
        return self

    def __exit__(self, exc_type, *_) -> None:
        for path, handle in self._files.items():
            handle.close()
            if exc_type is None:
                self._partial(path).replace(path)
            else:
                self._partial(path).unlink(missing_ok=True)
