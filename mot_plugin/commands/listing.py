"""`mot plugins`: what is registered, and where it comes from."""

from __future__ import annotations

import click

from mot_plugin.plugins import plugin_manager, registered


@click.command()
@click.option("--plugin", "modules", multiple=True, metavar="MODULE",
              help="Also load MODULE as a plugin, as a recipe's mot.plugins does (repeatable).")
def plugins(modules: tuple[str, ...]) -> None:
    """List every registered launcher, merge executor, baseline and eval backend, with the plugin
    that registers it and the distribution that plugin comes from (built-ins: mot-plugin)."""
    rows = registered(plugin_manager(modules))
    width = max(len(row.name) for row in rows)
    for row in rows:
        click.echo(f"{row.kind:<15} {row.name:<{width}} {row.plugin} ({row.distribution or 'not installed'})")
