"""Files written atomically and durably, and deletes confined to a root directory.

A reader sees the old file or the new one, never half of one: the new text goes to a temporary
file created exclusively (a planted file or symlink is never written through), is fsynced, renamed
over the old one, and the directory is fsynced, so a marker written after its outputs cannot outlive
them after a power loss. `check_inside` and `remove_tree` keep writes and deletes inside a run
directory: no symlink below it is followed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

from mot_plugin.errors import UserError


class OutsideRoot(UserError):
    """A path to write or delete is not plainly inside its root (outside it, or through a symlink)."""


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file under `path` (or `path` itself) and every directory holding them."""
    if path.is_symlink() or not path.exists():
        return
    if path.is_file():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        fsync_dir(path.parent)
        return
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            file = Path(dirpath) / name
            if not file.is_symlink():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        fsync_dir(Path(dirpath))


@contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A new text file written through a handle: it appears at `path` complete and fsynced when the
    block ends, or not at all (an exclusive temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str))


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
        return None


def check_inside(path: Path, root: Path) -> Path:
    """`path`, if it lies below `root` and no component from `root` down to it is a symlink;
    raise `OutsideRoot` otherwise (`root` itself may be a link: the user chose it)."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if path == root or root not in path.parents:
        raise OutsideRoot(f"{path}: not inside {root}; mot writes and deletes only inside the run directory")
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise OutsideRoot(f"{current}: a symbolic link inside the run directory; mot never writes or "
                              "deletes through one (remove it)")
    return path


def remove_tree(path: Path, root: Path) -> None:
    """Delete `path` (a directory tree or a file) after `check_inside(path, root)`."""
    check_inside(path, root)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
