"""What steps return: one model per kind of step, the one place their fields and defaults live.

A hook implementation may return the model or a plain dict of its fields; the runner validates it
into the model (`parse_result`), stores its JSON form in the step's marker, and reads it back typed
(`mot status`, the report). Plugins may add fields of their own: they are kept as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mot_plugin.errors import UserError, first_error


class StepResult(BaseModel):
    """Fields common to every result (none): a plugin's extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    def brief(self) -> str:
        """A few words for the runner's `done in ...` line and `mot status`."""
        return ""


class PrepareResult(StepResult):
    """A teacher's data tokenized once (Axolotl `preprocess`)."""

    prepared: str | None = None
    """The prepared-data directory."""


class BranchResult(StepResult):
    """What the in-branch Axolotl plugin records once a branch's final weights are saved."""

    step: str | None = None
    """The branch's step id."""
    steps: int = 0
    """Optimizer steps taken."""
    final_train_loss: float | None = None
    """The last logged training loss; None when no step logged one."""
    mean_train_loss: float | None = None
    """The trainer's mean loss over the run; None when it reported none."""
    tokens_trained: int = 0
    """Non-padding tokens trained on."""
    train_seconds: float | None = None
    """Seconds inside the trainer's loop."""
    process_seconds: float | None = None
    """Seconds since the branch's process started (imports, model load and save included)."""
    loss_curve: list[tuple[int, float]] = []
    """(step, loss) at every logging step."""

    def brief(self) -> str:
        loss = "n/a" if self.final_train_loss is None else f"{self.final_train_loss:.4f}"
        return f"steps {self.steps}, loss {loss}, tokens {self.tokens_trained}"


class MergeResult(StepResult):
    """A merged model and, once the runner has computed them, its diagnostics."""

    merged: str | None = None
    """The merged model's directory."""
    method: str | None = None
    """The merge method (mergekit's name, or the plugin's)."""
    inputs: list[str] = []
    """The models merged, as the merge config names them."""
    diagnostics: dict[str, Any] | None = None
    """Update sizes, pairwise cosines, sign disagreement and warnings (`mot_plugin.diagnostics`);
    None when they could not be computed."""
    weights: dict[str, float] | None = None
    """Each teacher's branch weight when the merge derived them from validation accuracy
    (`weights: validation`); None otherwise."""

    def brief(self) -> str:
        return f"merged {len(self.inputs)} models" if self.inputs else ""


class SliceMetrics(BaseModel):
    """Accuracy on the problems of one tag (a slice) of the eval file."""

    accuracy: float
    """Mean over the slice's problems of the fraction of correct samples."""
    n_problems: int
    """Problems carrying the tag."""


class EvalMetrics(StepResult):
    """Accuracy of one model on the held-out problems (`mot_plugin.evaluate.evaluate`)."""

    accuracy: float | None = None
    """Mean over problems of the fraction of correct samples."""
    accuracy_std: float = 0.0
    """Population std of the per-sample-set accuracies (0 with one sample per problem)."""
    n_problems: int = 0
    n_samples: int = 1
    """Samples per problem."""
    mean_response_tokens: float | None = None
    """Generated tokens per response, EOS included."""
    unextracted: int = 0
    """Responses with no extractable final answer."""
    seconds: float | None = None
    """Wall time of the whole evaluation (model load, generation, grading)."""
    slices: dict[str, SliceMetrics] = {}
    """Accuracy per tag of the eval rows (`tags`, see `mot_plugin.grading`); empty when no row has tags."""

    def brief(self) -> str:
        if self.accuracy is None:
            return ""
        slices = "".join(f", {tag} {100 * s.accuracy:.1f}% of {s.n_problems}" for tag, s in self.slices.items())
        return f"accuracy {100 * self.accuracy:.1f}%{slices}, unextracted {self.unextracted}"


class ChoiceResult(StepResult):
    """The merge candidate a round continues with, and every candidate's validation accuracy."""

    chosen: str | None = None
    """The chosen candidate's name."""
    validation: dict[str, float | None] = {}
    """Each candidate's validation accuracy, in the order written."""
    merged: str | None = None
    """The round's student (the chosen candidate's files)."""

    def brief(self) -> str:
        scores = ", ".join(f"{name} {'n/a' if acc is None else f'{100 * acc:.1f}%'}"
                           for name, acc in self.validation.items())
        return f"chose {self.chosen} (validation: {scores})" if self.chosen else ""


RESULTS: dict[str, type[StepResult]] = {"prepare": PrepareResult, "branch": BranchResult, "merge": MergeResult,
                                        "eval": EvalMetrics, "choose": ChoiceResult}
"""The result model of each kind of step."""


def parse_result(kind: str, value: StepResult | dict[str, Any], where: str) -> StepResult:
    """`value` (a hook's return or a marker's stored result) as the model of its kind; a value that
    does not fit raises a one-line `UserError` naming `where`."""
    model = RESULTS[kind]
    if isinstance(value, model):
        return value
    if isinstance(value, StepResult):
        value = value.model_dump()
    if not isinstance(value, dict):
        raise UserError(f"{where}: a {kind} step returned {type(value).__name__}, not a dict or {model.__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as err:
        loc, message = first_error(err)
        raise UserError(f"{where}: {kind} result field {'.'.join(str(p) for p in loc)!r}: {message}") from None
