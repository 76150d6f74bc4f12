"""The plugin manager: built-in plugins, installed plugins (entry points) and recipe plugins, and
what they register (`mot_plugin.registry`)."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Registered:
    """One registered entry, for `mot plugins`."""

    kind: str
    """launcher, merge executor, baseline or eval backend."""
    name: str
    plugin: str
    """The plugin that registered it (its module)."""
    distribution: str
    """The installed distribution the plugin's module comes from ("" if none: a module on the path)."""


def registered(pm: pluggy.PluginManager) -> list[Registered]:
    """Every entry the plugins of `pm` register, by kind then name, with where each comes from."""
    from importlib.metadata import packages_distributions

    from mot_plugin.registry import KINDS, Registry

    installed = {id(plugin): dist.project_name for plugin, dist in pm.list_plugin_distinfo()}
    packages = packages_distributions()
    rows = []
    for impl in pm.hook.mot_register.get_hookimpls():
        one = Registry()
        impl.function(register=one)
        module = getattr(impl.plugin, "__name__", type(impl.plugin).__module__)
        dist = installed.get(id(impl.plugin)) or ", ".join(dict.fromkeys(packages.get(module.partition(".")[0], [])))
        rows += [Registered(KINDS[kind], name, module, dist)
                 for kind, entries in one.entries.items() for name in entries]
    order = list(KINDS.values())
    return sorted(rows, key=lambda r: (order.index(r.kind), r.name))
