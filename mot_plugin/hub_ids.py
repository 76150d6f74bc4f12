"""What a hub repository id and a license id look like: what the recipe schema checks
(`mot.student_hub_id`, `mot.license`) and `mot push` checks (REPO_ID).

Light: nothing here imports huggingface_hub at import time.
"""

from __future__ import annotations

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
