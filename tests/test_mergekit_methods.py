"""The facts of mergekit's methods that mot ships as data (planning imports no mergekit, no torch)
are the installed mergekit's: regenerate them with `python -m mot_plugin.builtin.mergekit_methods`."""

from __future__ import annotations

from mot_plugin.builtin import mergekit_methods


def test_shipped_facts_are_the_installed_mergekits():
    shipped, installed = mergekit_methods.shipped(), mergekit_methods.installed()
    assert shipped["mergekit"] == installed["mergekit"], "another mergekit: regenerate the data"
    assert shipped == installed


def test_values_are_checked_as_mergekit_checks_them():
    from mergekit.merge_methods.registry import registered_methods

    for method in registered_methods():
        for parameter in method.spec.parameters:
            for value in (0.5, 1, True, "x", None, [1]):
                try:
                    parameter.validate(value)
                    ok = True
                except Exception:
                    ok = False
                try:
                    mergekit_methods.check_value(parameter.name, value, "k", method.spec.name)
                    mine = True
                except Exception:
                    mine = False
                assert mine == ok, (method.spec.name, parameter.name, value)
