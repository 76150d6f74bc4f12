"""`mot push`: the final student, its card, the recipe and the data hashes to a Hugging Face model
repository; with `revisions`, every round's merged model to a branch of its own (`round-01`, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mot_plugin.atomic import read_json
from mot_plugin.card import Paths, merge_steps, write_cards
from mot_plugin.choices import final_step
from mot_plugin.datahash import HASHES_FILE
from mot_plugin.errors import UserError
from mot_plugin.planner import Plan
from mot_plugin.rundir import RECIPE_FILE, SOURCE_FILE


class PushError(UserError):
    """The run cannot be pushed (not finished); one line."""


@dataclass(frozen=True)
class Upload:
    """One commit: files (local path or bytes) to their paths in the repository, on `revision`."""

    revision: str
    files: dict[str, Path | bytes]
    message: str


def _model_files(model_dir: Path) -> dict[str, Path | bytes]:
    return {str(p.relative_to(model_dir)): p for p in sorted(model_dir.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp")}


def uploads(plan: Plan, revisions: bool) -> list[Upload]:
    """What `mot push` commits: the final student with the recipe (as its author wrote it) and the
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


def push(plan: Plan, repo_id: str, revisions: bool, private: bool = False) -> list[Upload]:
    """Write the cards, then commit every upload through `huggingface_hub` (one commit per revision)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from mot_plugin.report import collect_metrics

    write_cards(plan, collect_metrics(plan))
    commits = uploads(plan, revisions)
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    for commit in commits:
        if commit.revision != "main":
            api.create_branch(repo_id, branch=commit.revision, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes)
                                         else str(content)) for name, content in commit.files.items()]
        api.create_commit(repo_id, operations=operations, commit_message=commit.message, revision=commit.revision)
    return commits


def describe(commits: list[Upload], repo_id: str) -> list[str]:
    """`--dry-run`: every file and where it would go."""
    lines = []
    for commit in commits:
        lines.append(f"{repo_id}@{commit.revision}: {commit.message}")
        for name, content in commit.files.items():
            size = len(content) if isinstance(content, bytes) else content.stat().st_size
            origin = "" if isinstance(content, bytes) else f" <- {content}"
            lines.append(f"  {name:<32} {size:>12} bytes{origin}")
    return lines
