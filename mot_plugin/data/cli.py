"""`mot data ...`: the corpus commands."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Turn teacher corpora into per-teacher Axolotl chat_template JSONL files, filter and inspect them."""


from mot_plugin.data.generate import generate_command as generate  # noqa: E402

data.add_command(generate)
