"""The plugin manager: built-in plugins, installed plugins (entry points) and recipe plugins, and
what they register (`mot_plugin.registry`)."""

from __future__ import annotations

import importlib
import os
import sys

import pluggy

from mot_plugin import hookspecs
from mot_plugin.recipe import RecipeError
from mot_plugin.builtin.selected import Selected
from mot_plugin.registry import collect

ENTRY_POINT_GROUP = "mot"
"""Installed packages add MoT plugins under this entry-point group."""
SELECTED = "mot_plugin.builtin.selected.Selected"
"""The built-in execution hooks: run what the recipe selected from the registry."""
TRACE_ENV = "MOT_TRACE_HOOKS"
"""Set to 1 to print every hook call and its result to stderr."""
BUILTINS = (
    "mot_plugin.builtin.axolotl_branch",
    "mot_plugin.builtin.ray_launcher",
    "mot_plugin.builtin.slurm_launcher",
    "mot_plugin.builtin.mergekit_merge",
    "mot_plugin.builtin.evaluation",
    "mot_plugin.builtin.baselines",
    "mot_plugin.builtin.choose",
    "mot_plugin.builtin.round_summary",
)


def plugin_manager(modules: list[str] | tuple[str, ...] = ()) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, every installed plugin and the named `modules`."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise RecipeError(f"mot.plugins: cannot import {name!r} ({err})") from None
        if not pm.is_registered(module):
            pm.register(module, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        raise RecipeError(f"plugin {err.plugin!r}: {err}") from None
    collect(pm.hook)  # a clash of names is an error now, before anything is planned
    pm.register(Selected(pm.hook), name=SELECTED)
    if os.environ.get(TRACE_ENV, "") not in ("", "0"):
        pm.trace.root.setwriter(lambda text: sys.stderr.write(f"[mot hooks] {text}"))
        pm.enable_tracing()
    return pm
