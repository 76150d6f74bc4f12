"""Built-in evaluation plugin: `python -m mot_plugin.evaluate` (warm or cold, see
`mot_plugin.process.run_logged`), logged per step."""

from __future__ import annotations

from mot_plugin.hookspecs import hookimpl
from mot_plugin.process import python_command, run_logged, warm_dir
from mot_plugin.recipe import Recipe
from mot_plugin.results import EvalMetrics
from mot_plugin.steps import Step

METRICS_FILE = "metrics.json"


@hookimpl(trylast=True)
def mot_evaluate(recipe: Recipe, step: Step) -> EvalMetrics:
    """Generate on the held-out problems, check every answer, write samples and metrics."""
    cmd = python_command("mot_plugin.evaluate", str(step.config_path), str(step.output_dir))
    run_logged(step.id, cmd, step.log_path, env={"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"},
               warm_in=warm_dir(recipe))
    return EvalMetrics.model_validate_json((step.output_dir / METRICS_FILE).read_text())
