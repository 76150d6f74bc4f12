"""What mot needs to know of mergekit's merge methods, without importing mergekit (it imports torch):
each method's base-model policy, how many models it merges, and its parameters (scope, whether
required, value type), shipped as data (`mergekit_methods.json`) for the mergekit version mot is
tested with. With another mergekit installed, or a method the data lacks, mergekit's own registry
answers (`installed`); tests/test_mergekit_methods.py compares the data with the installed mergekit.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from mot_plugin.recipe import RecipeError

DATA = Path(__file__).with_name("mergekit_methods.json")
TYPES: dict[str, Any] = {"int": int, "float": float, "bool": bool, "float | None": float | None}
"""The value types of mergekit's parameters, by the name the data gives them."""


def mergekit_version() -> str | None:
    try:
        return version("mergekit")
    except PackageNotFoundError:
        return None


@cache
def shipped() -> dict[str, Any]:
    """The data: `{"mergekit": version, "methods": {name: facts}}`."""
    return json.loads(DATA.read_text())


def _type_name(value_type: Any) -> str:
    name = next((n for n, t in TYPES.items() if t == value_type), None)
    if name is None:
        raise ValueError(f"mergekit parameter type {value_type!r} is not in TYPES")
    return name


def _registered(name: str):
    from mergekit.merge_methods.registry import get, registered_methods

    try:
        return get(name)
    except RuntimeError:
        known = ", ".join(sorted(m.spec.name for m in registered_methods()))
        raise RecipeError(f"mot.merge.method: unknown mergekit method {name!r} (known: {known})") from None


def _facts_of(spec: Any) -> dict[str, Any]:
    return {"base": spec.contract.base.value, "min_inputs": spec.contract.min_inputs,
            "max_inputs": spec.contract.max_inputs,
            "parameters": {p.name: {"scope": p.scope.value, "required": p.required, "type": _type_name(p.value_type)}
                           for p in spec.parameters}}


def installed() -> dict[str, Any]:
    """The data as the installed mergekit gives it (imports mergekit and torch)."""
    from mergekit.merge_methods.registry import registered_methods

    methods = {m.spec.name: _facts_of(m.spec) for m in sorted(registered_methods(), key=lambda m: m.spec.name)}
    return {"mergekit": mergekit_version(), "methods": methods}


@cache
def facts(name: str) -> dict[str, Any]:
    """The facts of method `name`: from the data when it is for the installed mergekit, else from
    mergekit's registry (`RecipeError` for an unknown method)."""
    data = shipped()
    if data["mergekit"] == mergekit_version() and name in data["methods"]:
        return data["methods"][name]
    return _facts_of(_registered(name).spec)


def check_value(name: str, value: Any, key: str, method: str) -> None:
    """`value` is a valid value of `method`'s parameter `name` (as mergekit validates it)."""
    params = facts(method)["parameters"]
    if name not in params:
        raise RecipeError(f"{key}: not a parameter of {method} (known: {', '.join(params) or 'none'})")
    try:
        TypeAdapter(TYPES[params[name]["type"]]).validate_python(value)
    except Exception as err:  # pydantic's ValidationError, one line of it
        raise RecipeError(f"{key}: invalid value {value!r} ({str(err).splitlines()[-1].strip()})") from None


if __name__ == "__main__":  # regenerate the data from the installed mergekit
    DATA.write_text(json.dumps(installed(), indent=1) + "\n")
