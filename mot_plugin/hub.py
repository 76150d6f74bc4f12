"""What the Hugging Face hub should know of a run's models: the hub id the student was made from
(the cards' `base_model`) and the license (`license`, or `license: other` with its name and link).

Light: nothing here imports huggingface_hub at import time (the recipe schema uses `license_id`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl
gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr
mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license
fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split())
"""The license ids the hub knows (huggingface.co/docs/hub/repositories-licenses)."""
PROVENANCE_FILE = "mot_student.json"
"""In a student `mot student-from-gguf` wrote: the GGUF it came from, its hub id and license when known."""


def license_id(value: str) -> str:
    """A hub license id (lower case) or an SPDX license id (as SPDX spells it); ValueError otherwise."""
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    lowered = value.strip().lower()
    if lowered in HUB_LICENSES:
        return lowered
    try:
        spdx = canonicalize_license_expression(value.strip())
    except InvalidLicenseExpression:
        spdx = ""
    if spdx and " " not in spdx and not spdx.startswith("LicenseRef-"):
        return spdx
    raise ValueError(f"{value!r} is neither a hub license id (apache-2.0, mit, llama3, ...) nor an SPDX license id")


def card_license(value: str | None) -> dict[str, str]:
    """Card metadata for a license: `license: <hub id>`, or for an SPDX id the hub does not list,
    `license: other` with `license_name` and `license_link` (what the hub asks for)."""
    if not value:
        return {}
    lowered = value.lower()
    if lowered in HUB_LICENSES:
        return {"license": lowered}
    return {"license": "other", "license_name": lowered, "license_link": f"https://spdx.org/licenses/{value}.html"}


def check_repo_id(value: str) -> str:
    """`value` if it is a hub repository id (`org/name`); ValueError otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if "/" not in value:
        raise ValueError(f"{value!r} is not a hub repository id (org/name)")
    try:
        validate_repo_id(value)
    except HFValidationError as err:
        raise ValueError(f"{value!r} is not a hub repository id ({str(err).splitlines()[0]})") from None
    return value


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


def student_origin(recipe: Any) -> Origin:
    """The student's hub id (of `recipe`, a `mot_plugin.recipe.Recipe`: the recipe imports this module): the recipe's `base_model` when it is one; for a local student
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
