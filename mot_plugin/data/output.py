"""Writing output files so that partial output is never mistaken for complete: X.partial, renamed at the end.

No data loss: an output that is one of the inputs is refused, an existing output is refused unless
`force`, and a failure leaves the file tree as it was (partial files and directories made for them removed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import IO, Iterable

from mot_plugin.data.rows import DataError


def check_output(path: Path, inputs: Iterable[Path] = (), force: bool = False) -> None:
    """Refuse to write `path` over an input, or over an existing file unless `force`."""
    for given in inputs:
        if path.absolute() == Path(given).absolute() or (path.exists() and Path(given).exists()
                                                         and os.path.samefile(path, given)):
            raise DataError(f"{path}: this output is also an input; write to another file")
    if (path.exists() or path.is_symlink()) and not force:
        raise DataError(f"{path}: exists; pass --force to replace it")
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a file")


class PartialFiles:
    """JSON Lines (and other) files written as `NAME.partial`; on leaving the `with` block they are all
    renamed to NAME, or all removed (with the directories made for them) if the block raised."""

    def __init__(self, inputs: Iterable[Path] = (), force: bool = False) -> None:
        self._files: dict[Path, IO[str]] = {}
        self._made: list[Path] = []
        self.inputs, self.force = list(inputs), force

    def _handle(self, path: Path) -> IO[str]:
        if path not in self._files:
            check_output(path, self.inputs, self.force)
            missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made += missing[-1:]
            self._files[path] = open(self._partial(path), "x", encoding="utf-8")  # noqa: SIM115
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
            if exc_type is None:
                handle.flush()
                os.fsync(handle.fileno())
            handle.close()
            if exc_type is None:
                self._partial(path).replace(path)
            else:
                self._partial(path).unlink(missing_ok=True)
        if exc_type is not None:
            for made in self._made:
                shutil.rmtree(made, ignore_errors=True)
