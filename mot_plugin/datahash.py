"""Content hashes of training files: a run's identity includes what its data says, not only where it is.

Axolotl keys its tokenization cache on dataset paths, so each teacher's prepared-data directory is
named after the hash of its files' contents: a changed file gets a fresh directory (tokenized anew),
and the changed config re-runs the branches that read it and every step after them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HASHES_FILE = "data.json"
"""In the run directory: every local training file's size, mtime and sha256."""


def provenance_path(data_file: Path) -> Path:
    """Where `mot data generate` records what produced `data_file` (`<name>.provenance.json`)."""
    return data_file.with_name(f"{data_file.stem}.provenance.json")


def files_under(path: Path) -> list[Path]:
    """The files of a folder (recursively, sorted), or the file itself; [] when nothing is there."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path] if path.is_file() else []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DataHashes:
    """sha256 of local dataset files, reusing a recorded hash while a file's size and mtime are unchanged."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / HASHES_FILE
        try:
            self.recorded: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.recorded = {}
        self.used: dict[str, dict[str, Any]] = {}

    def file(self, path: Path) -> str:
        stat = path.stat()
        entry = self.recorded.get(str(path))
        if not entry or entry["size"] != stat.st_size or entry["mtime_ns"] != stat.st_mtime_ns:
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(path)}
        entry = {k: v for k, v in entry.items() if k != "provenance"}
        try:
            entry["provenance"] = json.loads(provenance_path(path).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        self.used[str(path)] = entry
        return entry["sha256"]

    def datasets(self, datasets: list[dict[str, Any]]) -> str:
        """One short hash over the contents of every local file the dataset entries name."""
        digest = hashlib.sha256()
        for entry in datasets:
            path = entry.get("path")
            if isinstance(path, str) and Path(path).is_absolute():
                root = Path(path)
                if not root.exists():
                    self._recorded_only(root, digest)
                for file in files_under(root):
                    digest.update(f"{file.relative_to(root) if root.is_dir() else ''}\0{self.file(file)}\0".encode())
        return digest.hexdigest()[:12]

    def _recorded_only(self, root: Path, digest: Any) -> None:
        """A file or folder that is not here (a run directory copied to another machine): the hashes
        `data.json` recorded for it, so the copy's steps keep their fingerprints."""
        under = sorted(k for k in self.recorded if k.startswith(f"{root}/"))
        for key in [str(root)] if str(root) in self.recorded else under:
            self.used[key] = self.recorded[key]
            relative = Path(key).relative_to(root) if key != str(root) else ""
            digest.update(f"{relative}\0{self.recorded[key]['sha256']}\0".encode())
