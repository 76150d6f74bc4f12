"""An eval backend: the built-in transformers generation with an instruction appended to every
prompt. Select it with `eval: {backend: instruct, instruct: {text: " Box the answer."}}`. It runs
inside `python -m mot_plugin.evaluate`, which loads installed plugins and the recipe's `mot.plugins`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mot_plugin.hookspecs import hookimpl
from mot_plugin.registry import EvalBackend


class InstructSettings(BaseModel):
    """`mot.eval.instruct`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = " Put the final answer in \\boxed{}."
    """Appended to every prompt."""


def generate(model_dir, prompts, settings: InstructSettings, **options):
    """`n` responses per prompt and their token counts; mot extracts and grades the answers."""
    from mot_plugin.builtin.evaluation import generate_transformers

    return generate_transformers(model_dir, [prompt + settings.text for prompt in prompts], None, **options)


@hookimpl
def mot_register(register):
    register(EvalBackend("instruct", generate=generate, settings=InstructSettings))
