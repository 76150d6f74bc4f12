"""`mot push`: the final student, its card, the recipe and the data hashes to a Hugging Face model
repository; with `revisions`, every round's merged model to a branch of its own (`round-01`, ...).

Each revision holds exactly its own files: a round's branch starts from the repository's first commit
(the hub's `.gitattributes`), never from `main`, and files a revision held from an earlier push but no
longer does are deleted. Files go up through huggingface_hub's `upload_large_folder` (resumable: a
killed push, run again, uploads only what is missing) from a folder of hard links per revision,
`RUN_DIR/push/<repo>/<revision>/`, which also keeps the upload's resume records.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mot_plugin.atomic import check_inside, read_json, remove_tree
from mot_plugin.card import Paths, merge_steps, write_cards
from mot_plugin.choices import final_step
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.errors import UserError
from mot_plugin.planner import Plan
from mot_plugin.rundir import RECIPE_FILE, SOURCE_FILE

STAGE_DIR = "push"
"""In the run directory: `<repo>/<revision>/`, hard links to the files each revision holds."""
HUB_FILES = (".gitattributes",)
"""What the hub writes into a new repository's first commit (every revision keeps it)."""


class PushError(UserError):
    """The run cannot be pushed (not finished); one line."""


@dataclass(frozen=True)
class Upload:
    """One revision: files (local path or bytes) at their paths in the repository."""

    revision: str
    files: dict[str, Path | bytes]
    message: str


def _model_files(model_dir: Path) -> dict[str, Path | bytes]:
    return {str(p.relative_to(model_dir)): p for p in sorted(model_dir.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp")}


def uploads(plan: Plan, revisions: bool) -> list[Upload]:
    """What `mot push` puts on the hub: the final student with the recipe (as its author wrote it) and the
    data hashes (paths as the recipe wrote them) on `main`; with `revisions`, each round's model with
    the same recipe and hashes (`mot init --from REPO@round-NN` starts from any of them)."""
    merges = merge_steps(plan)
    final = final_step(plan)  # the last round's, or by `mot.select: validation`
    if not (final.output_dir / "config.json").is_file():
        raise PushError(f"{plan.recipe.run_dir}: the final round's model ({final.output_dir}) is not there; "
                        f"finish the run first (mot run)")
    run_dir, paths = plan.recipe.run_dir, Paths(plan)
    source = run_dir / SOURCE_FILE if (run_dir / SOURCE_FILE).is_file() else run_dir / RECIPE_FILE
    hashes = {paths.show(k): v for k, v in (read_json(run_dir / HASHES_FILE) or {}).items()}
    published = {"recipe.yaml": source, "data.json": json.dumps(hashes, indent=2).encode()}
    commits = [Upload("main", {**_model_files(final.output_dir), **published},
                      f"MoT student: round {final.round} of {run_dir.name}")]
    if revisions:
        commits += [Upload(f"round-{m.round:02d}", {**_model_files(m.output_dir), **published},
                           f"MoT round {m.round} of {run_dir.name}") for m in merges if m.output_dir.is_dir()]
    return commits


def stage(plan: Plan, repo_id: str, upload: Upload) -> Path:
    """The folder `upload_large_folder` sends for one revision: hard links to the run's files (copies
    where the file system has none) and the generated files; its `.cache` (resume records) is kept."""
    run_dir = plan.recipe.run_dir
    folder = check_inside(run_dir / STAGE_DIR / repo_id.replace("/", "--") / upload.revision, run_dir)
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name != ".cache":
                remove_tree(child, run_dir)
    for name, content in upload.files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
            continue
        try:
            os.link(content, target)
        except OSError:
            shutil.copy2(content, target)
    return folder


def push(plan: Plan, repo_id: str, revisions: bool, private: bool = False) -> list[Upload]:
    """Write the cards, then upload every revision (see the module's docstring) to the hub at
    `HF_ENDPOINT` (default: huggingface.co)."""
    from huggingface_hub import CommitOperationDelete, HfApi

    from mot_plugin.report import collect_metrics

    write_cards(plan, collect_metrics(plan), repo_id if revisions else None)
    commits = uploads(plan, revisions)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)  # as `mot init --from` reads the hub
    api.create_repo(repo_id, private=private, exist_ok=True)
    first = api.list_repo_commits(repo_id)[-1].commit_id
    for commit in commits:
        if commit.revision != "main":
            api.create_branch(repo_id, branch=commit.revision, revision=first, exist_ok=True)
        api.upload_large_folder(repo_id, stage(plan, repo_id, commit), repo_type="model", revision=commit.revision,
                                print_report=False)
        stale = set(api.list_repo_files(repo_id, revision=commit.revision)) - set(commit.files) - set(HUB_FILES)
        if stale:
            api.create_commit(repo_id, operations=[CommitOperationDelete(path) for path in sorted(stale)],
                              commit_message=f"mot push: remove files {commit.message} does not hold",
                              revision=commit.revision)
    return commits


def describe(commits: list[Upload], repo_id: str) -> list[str]:
    """`--dry-run`: every revision and exactly the files it will hold."""
    lines = []
    for commit in commits:
        start = "" if commit.revision == "main" else ", a branch from the repository's first commit"
        lines.append(f"{repo_id}@{commit.revision}: {commit.message}{start}; it will hold exactly:")
        lines.append(f"  {'.gitattributes':<32} {'':>12}       (the hub's own)")
        for name, content in commit.files.items():
            size = len(content) if isinstance(content, bytes) else content.stat().st_size
            origin = "" if isinstance(content, bytes) else f" <- {content}"
            lines.append(f"  {name:<32} {size:>12} bytes{origin}")
    return lines
