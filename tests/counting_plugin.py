"""A plugin for tests/test_hooks.py that records every hook call and registers a counting entry of
every kind (launcher, merge executor, baseline, eval backend), so one fast run shows each hook and
each registry's entry being called."""

from __future__ import annotations

import inspect
import sys

import fake_launcher
from mot_plugin import hookspecs
from mot_plugin.hookspecs import hookimpl
from example_plugins import mean_merge, subset_baseline
from mot_plugin.registry import Baseline, EvalBackend, Launcher, MergeExecutor

CALLS: list[str] = []
"""Hook names and `<kind>:<name>` of registry entries, in the order they were called."""


def _recorder(name):
    @hookimpl(wrapper=True)
    def record():
        CALLS.append(name)
        return (yield)

    record.__name__ = name
    return record


for _name, _ in inspect.getmembers(hookspecs, inspect.isfunction):  # the others are implemented below
    if _name.startswith("mot_") and _name not in ("mot_register", "mot_prepare_data", "mot_evaluate"):
        setattr(sys.modules[__name__], _name, _recorder(_name))


def run_branch(recipe, step, settings):
    CALLS.append("launcher:counting")
    return fake_launcher.mot_run_branch(recipe, step)


def merge_config(recipe, merge, settings):
    CALLS.append("merge executor:counting")
    return mean_merge.config(recipe, merge, mean_merge.MeanSettings())


def merge_run(recipe, step, settings):
    CALLS.append("merge executor:counting")
    return mean_merge.run(recipe, step, mean_merge.MeanSettings())


def plan_baseline(lineage, settings):
    CALLS.append("baseline:counting")
    subset_baseline.plan(lineage, settings)


def generate(model_dir, prompts, settings, **options):
    CALLS.append("eval backend:counting")
    return [["#### 2"] * options["n"] for _ in prompts], [[3] * options["n"] for _ in prompts]


@hookimpl
def mot_register(register):
    CALLS.append("mot_register")
    register(Launcher("counting", run_branch=run_branch))
    register(MergeExecutor("counting", config=merge_config, run=merge_run))
    register(Baseline("counting", plan=plan_baseline, settings=subset_baseline.SubsetSettings))
    register(EvalBackend("counting", generate=generate))


@hookimpl
def mot_prepare_data(recipe, step):
    CALLS.append("mot_prepare_data")
    return fake_launcher.mot_prepare_data(recipe, step)


@hookimpl
def mot_evaluate(recipe, step):
    """What `python -m mot_plugin.evaluate` runs, in this process: the eval backend comes from the registry."""
    from mot_plugin.evaluate import run_eval

    CALLS.append("mot_evaluate")
    return run_eval(step.config, step.output_dir)
