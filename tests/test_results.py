"""Typed step results: what a hook returns is validated into the model of its kind."""

import pytest

from mot_plugin.errors import UserError
from mot_plugin.results import BranchResult, EvalMetrics, MergeResult, parse_result


def test_a_plugins_dict_becomes_the_model_with_its_extra_fields_kept():
    result = parse_result("merge", {"merged": "/run/round-01/merged", "by": "my-plugin"}, "round-01/merge")
    assert isinstance(result, MergeResult)
    assert result.merged == "/run/round-01/merged" and result.inputs == [] and result.diagnostics is None
    assert result.model_dump()["by"] == "my-plugin"


def test_a_model_passes_through_and_a_wrong_field_is_one_line_naming_it():
    branch = BranchResult(steps=3, tokens_trained=10)
    assert parse_result("branch", branch, "x") is branch
    with pytest.raises(UserError, match=r"^round-01/branch-a: branch result field 'steps': .*") as err:
        parse_result("branch", {"steps": "many"}, "round-01/branch-a")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="returned list"):
        parse_result("eval", [0.5], "eval/round-00")


def test_briefs_survive_missing_values():
    assert BranchResult(steps=3).brief() == "steps 3, loss n/a, tokens 0"  # a branch that logged no loss
    assert BranchResult(steps=3, final_train_loss=0.25).brief() == "steps 3, loss 0.2500, tokens 0"
    assert EvalMetrics().brief() == ""
    assert EvalMetrics(accuracy=0.5, unextracted=2).brief() == "accuracy 50.0%, unextracted 2"


def test_a_stored_result_reads_back_equal():
    metrics = EvalMetrics(accuracy=0.25, n_problems=4, mean_response_tokens=7.5, seconds=1.0)
    assert parse_result("eval", metrics.model_dump(mode="json"), "m") == metrics
