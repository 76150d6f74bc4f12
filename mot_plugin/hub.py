"""What the Hugging Face hub should know of a run's models: the hub id the student was made from
(the cards' `base_model`) and the license (`license`, or `license: other` with its name and link).

Light: nothing here imports huggingface_hub at import time. What hub and license ids look like:
`mot_plugin.hub_ids`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mot_plugin.hub_ids import HUB_LICENSES, check_repo_id, license_id
from mot_plugin.recipe import Recipe

PROVENANCE_FILE = "mot_student.json"
"""In a student `mot student-from-gguf` wrote: the GGUF it came from, its hub id and license when known."""


def card_license(value: str | None) -> dict[str, str]:
    """Card metadata for a license: `license: <hub id>`, or for an SPDX id the hub does not list,
    `license: other` with `license_name` and `license_link` (what the hub asks for)."""
    if not value:
        return {}
    lowered = value.lower()
    if lowered in HUB_LICENSES:
        return {"license": lowered}
    return {"license": "other", "license_name": lowered, "license_link": f"https://spdx.org/licenses/{value}.html"}


def _is_hub_id(value: Any) -> bool:
    try:
        return isinstance(value, str) and not Path(value).is_absolute() and bool(check_repo_id(value))
    except ValueError:
        return False


def _read(path: Path, reader) -> Any:
    try:
        return reader(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None


def student_card(student: Path) -> dict[str, Any]:
    """The front matter of a local student's own `README.md` card ({} without one)."""
    text = _read(student / "README.md", str) or ""
    if not text.startswith("---"):
        return {}
    found = _read_front_matter(text)
    return found if isinstance(found, dict) else {}


def _read_front_matter(text: str) -> Any:
    try:
        return yaml.safe_load(text.split("---", 2)[1])
    except (IndexError, yaml.YAMLError):
        return None


@dataclass(frozen=True)
class Origin:
    """Where the round-0 student comes from, as the hub should know it."""

    hub_id: str | None
    """The student's hub id (None: not known)."""
    how: str
    """How it was found, or why it is not known (one phrase, for the card)."""
    license: str | None
    """The license of the models mot writes (the recipe's, else the student's), or None."""


def student_origin(recipe: Recipe) -> Origin:
    """The student's hub id: the recipe's `base_model` when it is one; for a local student
    `mot.student_hub_id`, else what `mot student-from-gguf` recorded, else its config's `_name_or_path`.
    The license: `mot.license`, else the student's card's or recorded one."""
    student, mot = recipe.student, recipe.mot
    local = Path(student) if Path(student).is_absolute() else None
    recorded = (_read(local / PROVENANCE_FILE, json.loads) or {}) if local else {}
    card = student_card(local) if local else {}
    if local is None:
        hub_id, how = student, "the recipe's base_model"
    elif mot.student_hub_id:
        hub_id, how = mot.student_hub_id, "mot.student_hub_id"
    elif _is_hub_id(recorded.get("hub_id")):
        hub_id, how = recorded["hub_id"], f"recorded by mot student-from-gguf ({PROVENANCE_FILE})"
    elif _is_hub_id(name := (_read(local / "config.json", json.loads) or {}).get("_name_or_path")):
        hub_id, how = name, "the student's config.json (_name_or_path)"
    else:
        hub_id, how = None, "the student is a local checkpoint with no known hub id (set mot.student_hub_id)"
    license_ = mot.license or _valid_license(card.get("license")) or _valid_license(recorded.get("license"))
    return Origin(hub_id, how, license_)


def _valid_license(value: Any) -> str | None:
    try:
        return license_id(value) if isinstance(value, str) else None
    except ValueError:
        return None
