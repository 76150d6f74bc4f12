"""Built-in evaluation plugin: `python -m mot_plugin.evaluate` (warm or cold, see
`mot_plugin.process.run_logged`), logged per step; the `transformers` and `vllm` eval backends."""

from __future__ import annotations

from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import python_command, run_logged, warm_dir
from mot_plugin.recipe import Recipe
from mot_plugin.registry import EvalBackend
from mot_plugin.results import EvalMetrics
from mot_plugin.steps import Step

METRICS_FILE = "metrics.json"


def generate_transformers(model_dir, prompts, settings, **options):
    """Batched `generate` of transformers (CPU or GPU), left padding, the model's chat template."""
    from mot_plugin.evaluate import _generate

    return _generate(model_dir, prompts, **options)


def generate_vllm(model_dir, prompts, settings, **options):
    """vLLM's `LLM.chat` (when installed)."""
    from mot_plugin.evaluate import _generate_vllm

    return _generate_vllm(model_dir, prompts, **options)


@hookimpl
def mot_register(register) -> None:
    register(EvalBackend("transformers", generate=generate_transformers))
    register(EvalBackend("vllm", generate=generate_vllm))


@hookimpl(trylast=True)
def mot_evaluate(recipe: Recipe, step: Step) -> EvalMetrics:
    """Generate on the held-out problems with the recipe's eval backend, check every answer, write
    samples and metrics."""
    cmd = python_command("mot_plugin.evaluate", str(step.config_path), str(step.output_dir))
    run_logged(step.id, cmd, step.log_path, env={"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
               warm_in=warm_dir(recipe))
    return EvalMetrics.model_validate_json((step.output_dir / METRICS_FILE).read_text())
