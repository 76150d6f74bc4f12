"""Starting from a shared run: the recipe and input hashes a run published (a hub repository `mot push`
made, a folder laid out the same way, or a run directory), and the check of a recipe's inputs against
them (`mot init --from`, `mot plan`, `mot run`, `mot compare`).

The hashes sit beside the recipe, in the file its `mot.published` names (`NAME.published.json`), one
entry per input, keyed as the recipe names the input:

    {"source": "me/toy-mot@main",
     "inputs": {"mot.teachers.0.datasets.0.path": {"path": "data/brief.jsonl", "sha256": "...", "size": 1234},
                "base_model": {"path": "toy/student", "files": {"config.json": {"sha256": "...", "size": 712}}},
                "tokenizer_config": {"hub": "Qwen/Qwen3-14B"}}}

A file's entry holds its sha256, a folder's the sha256 of every file below it, a hub id only the id
(nothing to hash offline); `{"path": ...}` alone: a local input the run recorded no hash for.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mot_plugin.datahash import HASHES_FILE, DataHashes, files_under
from mot_plugin.errors import UserError, load_yaml, read_text
from mot_plugin.recipe.walk import input_values, recipe_inputs
from mot_plugin.recipe import HUB_ID, Recipe
from mot_plugin.rundir import RECIPE_FILE, RECIPE_HEADER, SOURCE_FILE

SUFFIX = ".published.json"
"""`mot init --from` writes `DIR/NAME.yaml` and, beside it, `DIR/NAME.published.json`."""
REPO = re.compile(rf"(?P<repo>{HUB_ID.pattern})(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9_./-]*))?")
"""A hub repository, optionally at a revision: `me/toy-mot@round-02`."""
SHA256 = re.compile(r"[0-9a-f]{64}")
SAME = ("same data", "same hub id")
"""The states in which an input is the published run's."""


class PublishedError(UserError):
    """A source that cannot be read, or published hashes that are malformed; one line."""


@dataclass(frozen=True)
class Published:
    """What a shared run published: its recipe as its author wrote it, and its inputs' hashes."""

    name: str
    """The name the recipe is written under (`DIR/NAME.yaml`): the repository's or folder's."""
    source: str
    """Where it came from: `org/name@revision`, or the folder."""
    text: str
    """The published recipe (YAML, comments included)."""
    inputs: dict[str, dict[str, Any]]
    """Per input key, its published entry (see the module docstring)."""


# ---------------------------------------------------------------- reading what a run published


def fetch(source: str) -> Published:
    """The recipe and input hashes published at `source`: a folder (a run directory, or a folder laid
    out as `mot push` lays out a repository), else a hub repository id with an optional `@revision`."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return from_folder(folder, str(folder), folder.absolute().name)
    match = REPO.fullmatch(source)
    if not match:
        raise PublishedError(f"{source}: neither a shipped recipe, a hub repository id (org/name[@revision]) "
                             "nor a folder")
    return _from_hub(match["repo"], match["revision"] or "main")


def from_folder(folder: Path, source: str, name: str) -> Published:
    """What `folder` publishes: its `recipe.yaml` and `data.json`. In a run directory (its
    `recipe.yaml` is the resolved recipe) the hashes are matched with the resolved inputs and the
    recipe written is `recipe.source.yaml`, as its author wrote it."""
    recipe_file = folder / RECIPE_FILE
    if not recipe_file.is_file():
        raise PublishedError(f"{source}: no {RECIPE_FILE} (neither a run directory nor what mot push publishes)")
    text = read_text(recipe_file, PublishedError)
    resolved = _mapping(load_yaml(recipe_file, PublishedError), f"{source}/{RECIPE_FILE}")
    if text.startswith(RECIPE_HEADER):
        written_file = folder / SOURCE_FILE
        text = read_text(written_file, PublishedError) if written_file.is_file() else text.removeprefix(RECIPE_HEADER)
    written = _mapping(yaml.safe_load(text), f"{source}/{RECIPE_FILE}")
    if not isinstance(written.get("mot"), dict):
        raise PublishedError(f"{source}/{RECIPE_FILE}: has no `mot:` block (not a mot recipe)")
    hashes = _hashes(folder / HASHES_FILE, f"{source}/{HASHES_FILE}")
    return Published(name=name, source=source, text=text, inputs=entries(written, resolved, hashes))


def _from_hub(repo: str, revision: str) -> Published:
    """`recipe.yaml` and `data.json` of a hub repository at `revision`, through huggingface_hub
    (`HF_ENDPOINT`, its login or `HF_TOKEN` as it reads them)."""
    import os

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    source = f"{repo}@{revision}"
    with tempfile.TemporaryDirectory(prefix="mot-published-") as tmp:
        for filename in (RECIPE_FILE, HASHES_FILE):
            try:
                hf_hub_download(repo, filename, revision=revision, local_dir=tmp,
                                endpoint=os.environ.get("HF_ENDPOINT") or None)
            except RepositoryNotFoundError:
                raise PublishedError(f"{source}: no such hub repository (or no access to it)") from None
            except RevisionNotFoundError:
                raise PublishedError(f"{source}: the repository has no revision {revision!r}") from None
            except EntryNotFoundError:
                raise PublishedError(f"{source}: no {filename} (not a repository mot push made?)") from None
            except OfflineModeIsEnabled:
                raise PublishedError(f"{source}: HF_HUB_OFFLINE is set; the hub cannot be reached") from None
            except OSError as err:  # httpx's and huggingface_hub's errors are OSErrors
                raise PublishedError(f"{source}: cannot download {filename}: {str(err).splitlines()[0]}") from None
        return from_folder(Path(tmp), source, repo.split("/")[1])


def _mapping(data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise PublishedError(f"{where}: a recipe must be a YAML mapping")
    return data


def _hash_entry(entry: Any, where: str) -> dict[str, Any]:
    """`{"sha256": ..., "size": ...}` of a valid hash entry; a malformed one raises `PublishedError`."""
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not SHA256.fullmatch(entry["sha256"]):
        raise PublishedError(f"{where}: not a hash entry (needs `sha256`, 64 hex digits)")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise PublishedError(f"{where}: `size` must be a number of bytes")
    return {"sha256": entry["sha256"], "size": size}


def _json(path: Path, where: str) -> Any:
    """The JSON in `path`; a missing or malformed file raises `PublishedError` naming `where`."""
    if not path.is_file():
        raise PublishedError(f"{where}: not found")
    try:
        return json.loads(read_text(path, PublishedError))
    except json.JSONDecodeError as err:
        raise PublishedError(f"{where}: not JSON ({err.msg}, line {err.lineno})") from None


def _hashes(path: Path, where: str) -> dict[str, dict[str, Any]]:
    """A `data.json` (path -> sha256, size ...), validated."""
    data = _json(path, where)
    if not isinstance(data, dict):
        raise PublishedError(f"{where}: must map each file to its hash")
    return {key: _hash_entry(entry, f"{where}: {key}") for key, entry in data.items()}


def entries(written: dict, resolved: dict, hashes: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """Per input of a recipe: its entry, from `hashes` (data.json) keyed by the paths of `resolved`
    (the recipe whose paths data.json uses), shown as `written` names the input."""
    shown = dict(input_values(written))
    found = {}
    for key, value in input_values(resolved):
        prefix = value.rstrip("/") + "/"
        files = {name[len(prefix):]: entry for name, entry in hashes.items() if name.startswith(prefix)}
        if value in hashes:
            content = hashes[value]
        elif files:
            content = {"files": dict(sorted(files.items()))}
        elif HUB_ID.fullmatch(value) and key != "mot.eval.data":
            found[key] = {"hub": value}
            continue
        else:
            content = {}
        found[key] = {"path": shown.get(key, value), **content}
    return found


# ---------------------------------------------------------------- the published file beside a recipe


def to_json(published: Published) -> dict[str, Any]:
    """The `NAME.published.json` of what `published` holds."""
    return {"source": published.source, "inputs": published.inputs}


def read(path: str | Path) -> dict[str, Any]:
    """A recipe's `mot.published` file, validated; a malformed one raises `PublishedError` naming it."""
    data = _json(Path(path), f"mot.published: {path}")
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict):
        raise PublishedError(f"mot.published: {path}: needs `inputs`, a mapping of each input to its hashes")
    for key, entry in inputs.items():
        where = f"mot.published: {path}: inputs.{key}"
        if not isinstance(entry, dict) or not isinstance(entry.get("hub", entry.get("path")), str):
            raise PublishedError(f"{where}: needs `path` (or `hub`)")
        if "sha256" in entry:
            _hash_entry(entry, where)
        files = entry.get("files", {})
        if not isinstance(files, dict):
            raise PublishedError(f"{where}.files: must map each file to its hash")
        for name, file in files.items():
            _hash_entry(file, f"{where}.files.{name}")
    return data


# ---------------------------------------------------------------- inputs against their published hashes


@dataclass(frozen=True)
class Check:
    """One input of a recipe against its published entry."""

    key: str
    shown: str
    """The input as the published recipe names it (a hub id, or its path)."""
    state: str
    """`same data`, `same hub id`, `different data`, `missing`, `not published` or `not in this recipe`."""
    detail: str = ""


def content(value: str, hashes: DataHashes) -> dict[str, Any]:
    """An input's entry as it is here: a file's sha256, a folder's files', a hub id's id; {} if missing."""
    path = Path(value)
    if not path.is_absolute():
        return {"hub": value}
    if path.is_file():
        return {"sha256": hashes.file(path), "size": path.stat().st_size}
    if path.is_dir():
        return {"files": {str(f.relative_to(path)): {"sha256": hashes.file(f), "size": f.stat().st_size}
                          for f in files_under(path)}}
    return {}


def _digest(entry: dict[str, Any]) -> str:
    """A short, comparable form of an entry's content."""
    if "sha256" in entry:
        return entry["sha256"][:12]
    if "files" in entry:
        return f"{len(entry['files'])} files"
    return entry.get("hub", "")


def judge(here: dict[str, Any], published: dict[str, Any] | None) -> tuple[str, str]:
    """The state of an input (`here`: `content`'s entry) against its published entry, and why."""
    if not published or not ({"sha256", "files", "hub"} & published.keys()):
        return "not published", "the published run recorded no hash for it"
    if "hub" in published or "hub" in here:
        same = here.get("hub") == published.get("hub")
        return ("same hub id", "not checked: hub contents are not hashed") if same else (
            "different data", f"{here.get('hub') or 'a local path'} here, {published.get('hub') or 'a local path'} published")
    if not here:
        return "missing", f"expected {_digest(published)}"
    if _sha256s(here) == _sha256s(published):
        return "same data", ""
    if "files" in here and "files" in published:
        ours, theirs = _sha256s(here), _sha256s(published)
        changed = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
        return "different data", f"{len(changed)} of its files differ ({', '.join(changed[:3])})"
    return "different data", f"sha256 {_digest(here)} here, {_digest(published)} published"


def _sha256s(entry: dict[str, Any]) -> dict[str, str]:
    """An entry's content: file name ('' for a file) -> sha256."""
    if "sha256" in entry:
        return {"": entry["sha256"]}
    return {name: file["sha256"] for name, file in (entry.get("files") or {}).items()}


def check(recipe: Recipe, published_file: dict[str, Any]) -> list[Check]:
    """Every input of `recipe` against `published_file` (what `read` returns), and every published
    input the recipe no longer names."""
    hashes = DataHashes(recipe.run_dir)
    published = published_file["inputs"]
    out = []
    for found in recipe_inputs(recipe):
        entry = published.get(found.key)
        value = found.value
        if entry and "hub" not in entry and not found.local:  # a published local path not here yet reads as a hub id
            value = str(Path(value).absolute())
        state, detail = judge(content(value, hashes), entry)
        out.append(Check(found.key, (entry or {}).get("path") or (entry or {}).get("hub") or found.value, state, detail))
    named = {c.key for c in out}
    out += [Check(key, entry.get("path") or entry.get("hub") or "", "not in this recipe", "the published run read it")
            for key, entry in published.items() if key not in named]
    return out


# ---------------------------------------------------------------- the recipe `mot init --from` writes


def with_mot_keys(text: str, values: dict[str, str]) -> str:
    """The recipe `text` with `mot.<key>: <value>` for each of `values`, comments kept: the key's line
    in the `mot:` block is replaced, or the key added at the block's top. A recipe whose block is laid
    out otherwise (a flow mapping, a value over several lines) is written again from its data."""
    from mot_plugin.recipe import dump_yaml

    data = yaml.safe_load(text)
    expected = {**data, "mot": {**data["mot"], **values}}
    lines = text.splitlines(keepends=True)
    head = next((i for i, line in enumerate(lines) if re.fullmatch(r"mot:\s*(#.*)?", line.rstrip())), None)
    block = []
    for i in range(head + 1 if head is not None else len(lines), len(lines)):
        if lines[i].strip() and not lines[i][0].isspace() and not lines[i].startswith("#"):
            break
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            block.append(i)
    if block:
        indent = " " * min(len(lines[i]) - len(lines[i].lstrip()) for i in block)
        added = []
        for key, value in values.items():
            line = f"{indent}{key}: {json.dumps(value)}\n"
            at = next((i for i in block if re.match(rf"{indent}{key}:(\s|$)", lines[i])), None)
            if at is None:
                added.append(line)
            else:
                lines[at] = line
        lines[head + 1:head + 1] = added
        if yaml.safe_load("".join(lines)) == expected:
            return "".join(lines)
    return "# Written by mot init from the published recipe (its comments could not be kept).\n" + dump_yaml(expected)
