"""The `mot` command (also `axolotl mot`): the group, its one error path, and its commands
(`mot_plugin.commands`)."""

from __future__ import annotations

import click

from mot_plugin import __version__
from mot_plugin.commands import listing, planning, runs, setup
from mot_plugin.data.cli import data
from mot_plugin.errors import StepFailed, UserError, fail


class _Refusing(click.Group):
    """The one place errors are reported: a `UserError` or a usage error from any command becomes
    `mot: error: <message>` (one line) and exit code 2; a `StepFailed` the same line and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StepFailed as err:
            fail(str(err), 1)
        except UserError as err:
            fail(str(err), 2)
        except click.UsageError as err:
            if isinstance(err, click.exceptions.NoArgsIsHelpError):
                raise
            where = err.ctx.command_path if err.ctx else "mot"
            fail(f"{where}: {err.format_message()}", 2)


@click.group(cls=_Refusing, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mot (mot-plugin)")
def main() -> None:
    """Merge-of-Thought distillation: per-teacher Axolotl branches merged with mergekit, round after round."""


for command in (planning.plan, planning.check, planning.init, runs.run, runs.status, runs.report, runs.compare,
                runs.eval_, runs.push, setup.toy, setup.student_from_gguf, listing.plugins, data):
    main.add_command(command)

if __name__ == "__main__":
    main()
