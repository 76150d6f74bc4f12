"""The bad-input corpus: every command refuses every case with exit code 2 and one line
`mot: error: ...` naming the file, key or line, without a traceback and without touching any file.

In-process (click's CliRunner), one table row per bad input. Recipe cases run under `mot plan` and
`mot run` (where training would start, the test fails instead: refusal must come first).
"""

from __future__ import annotations

import copy
import json
import os
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from click.testing import CliRunner

from conftest import recipe_data, write_recipe
from mot_plugin import runner
from mot_plugin.cli import main

NON_UTF8 = b'{"prompt": "caf\xe9", "answer": "1"}\n'
BINARY = b"\x89PNG\r\x1a\x00\x00\xff\xfe" * 50
CHAT = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}], "answer": "2"}


class Ctx:
    """A case's surroundings: tmp dir (the working directory), the toy inputs, and file writers."""

    def __init__(self, tmp: Path, toy: dict[str, Path]):
        self.tmp, self.toy = tmp, toy

    def file(self, name: str, content: bytes | str | list) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in content)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def dir(self, name: str) -> str:
        (self.tmp / name).mkdir(parents=True, exist_ok=True)
        return str(self.tmp / name)

    def recipe(self, data: dict, name: str = "recipe.yaml") -> str:
        return str(write_recipe(self.tmp / name, data))

    def good(self) -> dict:
        return recipe_data(self.toy, self.tmp / "run")

    def run_dir(self, recipe_yaml: bytes | str) -> str:
        self.file("old/recipe.yaml", recipe_yaml)
        return str(self.tmp / "old")


def at(data: dict, dotted: str) -> tuple[Any, Any]:
    """The container holding `dotted` (a.b.0.c) and the last key."""
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data.setdefault(key, {})
    return data, int(last) if isinstance(data, list) else last


def S(dotted: str, value: Any) -> Callable:  # noqa: N802 - a table's short name
    """Set recipe key `dotted` to `value` (a callable gets the Ctx)."""
    def edit(data: dict, ctx: Ctx) -> None:
        holder, key = at(data, dotted)
        holder[key] = value(ctx) if callable(value) else value
    return edit


def D(dotted: str) -> Callable:  # noqa: N802
    """Delete recipe key `dotted`."""
    def edit(data: dict, ctx: Ctx) -> None:
        holder, key = at(data, dotted)
        del holder[key]
    return edit


def both(*edits: Callable) -> Callable:
    def edit(data: dict, ctx: Ctx) -> None:
        for one in edits:
            one(data, ctx)
    return edit


DATA = "mot.teachers.0.datasets.0.path"
VALIDATION = S("mot.eval", lambda c: {"data": str(c.toy["eval"]),
                                      "validation": c.file("v.jsonl", [{"prompt": "What is 1 plus 1?", "answer": "2"}])})
"""An eval block with a validation split that shares no prompt with the toy's eval file."""


def candidates(*items: dict) -> Callable:
    """A good validation split and these merge candidates."""
    return both(VALIDATION, S("mot.merge.candidates", list(items)))


# (case id, edit of a good recipe, words the message must hold)
RECIPE_CASES = [
    ("base_model-list", S("base_model", ["a", "b"]), "base_model"),
    ("base_model-int", S("base_model", 5), "base_model"),
    ("base_model-null", S("base_model", None), "base_model"),
    ("base_model-empty", S("base_model", ""), "base_model"),
    ("base_model-missing", D("base_model"), "base_model"),
    ("base_model-typo-relative", S("base_model", "studnet"), "base_model: studnet"),
    ("base_model-typo-dotted", S("base_model", "./studnet"), "does not exist"),
    ("base_model-deep-path", S("base_model", "a/b/c"), "does not exist"),
    ("base_model-home-missing", S("base_model", "~/no-student"), "does not exist"),
    ("base_model-empty-dir", S("base_model", lambda c: c.dir("empty-model")), "holds no model"),
    ("base_model-a-file", S("base_model", lambda c: str(c.toy["eval"])), "base_model"),
    ("base_model-newline", S("base_model", "org/na\nme"), "base_model"),
    ("no-mot", D("mot"), "mot"),
    ("mot-int", S("mot", 5), "mot"),
    ("mot-list", S("mot", []), "mot"),
    ("rounds-true", S("mot.rounds", True), "mot.rounds"),
    ("rounds-zero", S("mot.rounds", 0), "mot.rounds"),
    ("rounds-negative", S("mot.rounds", -1), "mot.rounds"),
    ("rounds-float", S("mot.rounds", 2.5), "mot.rounds"),
    ("rounds-string", S("mot.rounds", "2"), "mot.rounds"),
    ("rounds-missing", D("mot.rounds"), "mot.rounds"),
    ("steps-true", S("mot.steps_per_round", True), "mot.steps_per_round"),
    ("steps-zero", S("mot.steps_per_round", 0), "mot.steps_per_round"),
    ("steps-word", S("mot.steps_per_round", "three"), "mot.steps_per_round"),
    ("one-teacher", lambda d, c: d["mot"]["teachers"].pop(), "mot.teachers"),
    ("teachers-string", S("mot.teachers", "abc"), "mot.teachers"),
    ("teachers-ints", S("mot.teachers", [5, 6]), "mot.teachers.0"),
    ("teacher-name-slash", S("mot.teachers.0.name", "a/b"), "mot.teachers.0.name"),
    ("teacher-name-empty", S("mot.teachers.0.name", ""), "mot.teachers.0.name"),
    ("teacher-name-dots", S("mot.teachers.0.name", ".."), "mot.teachers.0.name"),
    ("teacher-name-newline", S("mot.teachers.0.name", "a\n"), "mot.teachers.0.name"),
    ("teacher-name-int", S("mot.teachers.0.name", 7), "mot.teachers.0.name"),
    ("teacher-twice", S("mot.teachers.1.name", "brief"), "used twice"),
    ("datasets-empty", S("mot.teachers.0.datasets", []), "mot.teachers.0.datasets"),
    ("datasets-string", S("mot.teachers.0.datasets", "x.jsonl"), "mot.teachers.0.datasets"),
    ("datasets-int-entry", S("mot.teachers.0.datasets", [5]), "mot.teachers.0.datasets.0"),
    ("dataset-path-int", S(DATA, 5), DATA),
    ("dataset-path-list", S(DATA, ["a.jsonl"]), DATA),
    ("dataset-path-missing", D(DATA), DATA),
    ("dataset-path-absent-file", S(DATA, lambda c: str(c.tmp / "nope.jsonl")), "nope.jsonl"),
    ("dataset-path-typo-relative", S(DATA, "data/teachr.jsonl"), "teachr.jsonl"),
    ("dataset-path-typo-bare", S(DATA, "teachr"), "teachr"),
    ("dataset-etc-passwd", S(DATA, "/etc/passwd"), "/etc/passwd"),
    ("dataset-non-utf8", S(DATA, lambda c: c.file("t.jsonl", NON_UTF8)), "t.jsonl:1"),
    ("dataset-binary", S(DATA, lambda c: c.file("t.jsonl", BINARY)), "t.jsonl:1"),
    ("dataset-no-messages", S(DATA, lambda c: c.file("t.jsonl", [{"text": "hi"}])), "t.jsonl:1"),
    ("dataset-messages-string", S(DATA, lambda c: c.file("t.jsonl", [{"messages": "hi"}])), "t.jsonl:1"),
    ("dataset-message-no-content",
     S(DATA, lambda c: c.file("t.jsonl", [CHAT, {"messages": [{"role": "user"}, {"role": "assistant", "content": "2"}]}])),
     "t.jsonl:2"),
    ("dataset-row-list", S(DATA, lambda c: c.file("t.jsonl", ["[1, 2]"])), "t.jsonl:1"),
    ("dataset-empty", S(DATA, lambda c: c.file("t.jsonl", "\n")), "t.jsonl"),
    ("dataset-malformed", S(DATA, lambda c: c.file("t.jsonl", [CHAT, '{"messages": [oops'])), "t.jsonl:2"),
    ("dataset-newline-path", S(DATA, "a\nb.jsonl"), DATA),
    ("overrides-base_model", S("mot.teachers.0.overrides", {"base_model": "x"}), "mot.teachers.0.overrides"),
    ("overrides-string", S("mot.teachers.0.overrides", "x"), "mot.teachers.0.overrides"),
    ("weight-true", S("mot.teachers.0.weight", True), "mot.teachers.0.weight"),
    ("weight-word", S("mot.teachers.0.weight", "heavy"), "mot.teachers.0.weight"),
    ("weights-sum-zero", both(S("mot.teachers.0.weight", -1), S("mot.teachers.1.weight", 1)), "weight"),
    ("weights-all-zero", both(S("mot.teachers.0.weight", 0), S("mot.teachers.1.weight", 0)), "weight"),
    ("weight-nan", S("mot.teachers.0.weight", float("nan")), "mot.teachers.0.weight"),
    ("weight-inf", S("mot.teachers.0.weight", float("inf")), "mot.teachers.0.weight"),
    ("merge_parameters-string", S("mot.teachers.0.merge_parameters", "x"), "mot.teachers.0.merge_parameters"),
    ("merge-method-unknown", S("mot.merge.method", "nosuch"), "mot.merge.method"),
    ("merge-method-int", S("mot.merge.method", 3), "mot.merge.method"),
    ("merge-dtype-float99", S("mot.merge.dtype", "float99"), "mot.merge.dtype"),
    ("merge-out_dtype-int7", S("mot.merge.out_dtype", "int7"), "mot.merge.out_dtype"),
    ("ties-density-negative", S("mot.merge", {"method": "ties", "parameters": {"density": -5}}), "density"),
    ("ties-density-above-one", S("mot.merge", {"method": "ties", "parameters": {"density": 2}}), "density"),
    ("ties-teacher-density-negative",
     both(S("mot.merge", {"method": "ties", "parameters": {"density": 0.5}}),
          S("mot.teachers.0.merge_parameters", {"density": -1})), "mot.teachers.0.merge_parameters.density"),
    ("merge-unknown-parameter", S("mot.merge.parameters", {"lambda": 1}), "mot.merge.parameters.lambda"),
    ("merge-base_model-word", S("mot.merge.base_model", "maybe"), "mot.merge.base_model"),
    ("merge-string", S("mot.merge", "linear"), "mot.merge"),
    ("candidates-unknown-method", candidates({"method": "linear"}, {"method": "nosuch"}),
     "mot.merge.candidates.1.method: unknown mergekit method"),
    ("candidates-unknown-parameter", candidates({"method": "linear"}, {"method": "ties", "parameters": {"bogus": 1}}),
     "mot.merge.candidates.1.parameters.bogus"),
    ("candidates-density-above-one", candidates({"method": "linear"}, {"method": "ties", "parameters": {"density": 2}}),
     "mot.merge.candidates.1.parameters.density"),
    ("candidates-same-name", candidates({"method": "linear"}, {"method": "linear", "parameters": {"normalize": True}}),
     "mot.merge.candidates.1: the name 'linear' is taken by mot.merge.candidates.0"),
    ("candidates-same-merge", candidates({"name": "a"}, {"name": "b"}, {"name": "c", "method": "ties"}),
     "mot.merge.candidates.1: the same merge as mot.merge.candidates.0"),
    ("candidates-without-validation", S("mot.merge.candidates", [{"name": "a"}, {"method": "ties"}]),
     "mot.merge.candidates: choosing among merge candidates needs a validation split (mot.eval.validation)"),
    ("candidates-eval-without-validation",
     both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.merge.candidates", [{"name": "a"}, {"method": "ties"}])),
     "mot.merge.candidates: choosing among"),
    ("candidates-string", both(VALIDATION, S("mot.merge.candidates", "linear")), "mot.merge.candidates"),
    ("candidate-name-slash", candidates({"name": "a/b"}, {"method": "ties"}), "mot.merge.candidates.0.name"),
    ("candidate-executor-unknown", candidates({"name": "a"}, {"executor": "nope"}),
     "mot.merge.candidates.1.executor: unknown merge executor"),
    ("candidate-key-typo", candidates({"name": "a"}, {"methd": "ties"}),
     "mot.merge.candidates.1.methd: unknown key"),
    ("candidate-dtype", candidates({"name": "a"}, {"dtype": "int7"}), "mot.merge.candidates.1.dtype"),
    ("keep_candidates-word", both(candidates({"name": "a"}, {"method": "ties"}), S("mot.merge.keep_candidates", "yes")),
     "mot.merge.keep_candidates"),
    ("weights-validation-without-validation", S("mot.merge.weights", "validation"),
     "mot.merge.weights: weights: validation needs a validation split"),
    ("candidate-weights-without-validation",
     S("mot.merge", {"candidates": [{"name": "a", "weights": "validation"}]}),
     "mot.merge.weights: weights: validation needs a validation split"),
    ("weights-word", S("mot.merge.weights", "equal"), "mot.merge.weights"),
    ("select-validation-without-validation", S("mot.select", "validation"),
     "mot.select: select: validation needs a validation split"),
    ("select-word", S("mot.select", "best"), "mot.select"),
    ("validation-overlaps-test",
     both(S("mot.eval.data", lambda c: str(c.toy["eval"])),
          S("mot.eval.validation", lambda c: c.file("v.jsonl", [{"prompt": "x?", "answer": "1"},
                                                                  json.loads(c.toy["eval"].read_text().splitlines()[2])]))),
     "v.jsonl:2 has the prompt of"),
    ("validation-missing-file", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.validation", "nope-v.jsonl")),
     "mot.eval.validation"),
    ("validation-non-utf8", both(S("mot.eval.data", lambda c: str(c.toy["eval"])),
                                 S("mot.eval.validation", lambda c: c.file("v.jsonl", NON_UTF8))), "mot.eval.validation: "),
    ("validation-no-answer", both(S("mot.eval.data", lambda c: str(c.toy["eval"])),
                                  S("mot.eval.validation", lambda c: c.file("v.jsonl", [{"prompt": "1+1?"}]))),
     "v.jsonl:1"),
    ("validation-int", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.validation", 5)),
     "mot.eval.validation"),
    ("run_dir-a-file", S("mot.run_dir", lambda c: c.file("afile", "x")), "mot.run_dir"),
    ("run_dir-under-a-file", S("mot.run_dir", lambda c: c.file("afile", "x") + "/sub"), "mot.run_dir"),
    ("run_dir-list", S("mot.run_dir", ["a"]), "mot.run_dir"),
    ("run_dir-not-creatable", S("mot.run_dir", "/proc/mot-run"), "mot.run_dir"),
    ("run_dir-int", S("mot.run_dir", 5), "mot.run_dir"),
    ("run_dir-newline", S("mot.run_dir", "runs/a\nb"), "mot.run_dir"),
    ("run_dir-empty", S("mot.run_dir", ""), "mot.run_dir"),
    ("seed-word", S("mot.seed", "x"), "mot.seed"),
    ("seed-true", S("mot.seed", True), "mot.seed"),
    ("plugins-empty-name", S("mot.plugins", [""]), "mot.plugins"),
    ("plugins-unknown", S("mot.plugins", ["no_such_mot_plugin_xyz"]), "mot.plugins"),
    ("plugins-string", S("mot.plugins", "abc"), "mot.plugins"),
    ("plugins-int", S("mot.plugins", [5]), "mot.plugins"),
    ("plugins-relative-import", S("mot.plugins", [".x"]), "mot.plugins"),
    ("eval-missing-file", S("mot.eval", {"data": "nope-eval.jsonl"}), "nope-eval.jsonl"),
    ("eval-non-utf8", S("mot.eval.data", lambda c: c.file("e.jsonl", NON_UTF8)), "e.jsonl:1"),
    ("eval-no-answer", S("mot.eval.data", lambda c: c.file("e.jsonl", [{"prompt": "1+1?"}])), "e.jsonl:1"),
    ("eval-tag-number", S("mot.eval.data", lambda c: c.file("e.jsonl", [
        {"prompt": "1+1?", "answer": 2, "tags": ["kept"]}, {"prompt": "9+1?", "answer": 10, "tags": [7]}])),
     "e.jsonl:2: 'tags'"),
    ("eval-samples-zero", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.samples", 0)),
     "mot.eval.samples"),
    ("eval-limit-zero", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.limit", 0)),
     "mot.eval.limit"),
    ("eval-temperature-zero", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.temperature", 0)),
     "mot.eval.temperature"),
    ("eval-backend", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.backend", "tgi")),
     "mot.eval.backend"),
    ("eval-string", S("mot.eval", "x"), "mot.eval"),
    ("eval-data-dir", S("mot.eval.data", lambda c: c.dir("evaldir")), "evaldir"),
    ("published-missing-file", S("mot.published", "nope.published.json"), "nope.published.json: not found"),
    ("published-not-json", S("mot.published", lambda c: c.file("p.json", "{")), "p.json: not JSON"),
    ("published-no-inputs", S("mot.published", lambda c: c.file("p.json", "[]")), "needs `inputs`"),
    ("published-bad-sha256", S("mot.published", lambda c: c.file("p.json", json.dumps(
        {"inputs": {"base_model": {"path": "s", "sha256": "xyz"}}}))), "inputs.base_model: not a hash entry"),
    ("published-int", S("mot.published", 5), "mot.published"),
    ("baselines-unknown", S("mot.baselines", ["nope"]), "mot.baselines.0"),
    ("baselines-string", S("mot.baselines", "single"), "mot.baselines"),
    ("baseline_budget-word", S("mot.baseline_budget", "x"), "mot.baseline_budget"),
    ("launcher-unknown", S("mot.launch.launcher", "k8s"), "mot.launch.launcher"),
    ("launch-block-of-no-launcher", S("mot.launch.k8s", {}), "mot.launch.k8s: unknown key"),
    ("launch-ray-string", S("mot.launch.ray", "auto"), "mot.launch.ray: must be a mapping"),
    ("merge-executor-unknown", S("mot.merge.executor", "nope"), "mot.merge.executor: unknown merge executor"),
    ("merge-mergekit-block", S("mot.merge.mergekit", {"x": 1}), "mot.merge.mergekit.x: unknown key"),
    ("eval-vllm-block", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.vllm", {"x": 1})),
     "mot.eval.vllm.x"),
    ("baselines-unknown-with-settings", S("mot.baselines", [{"nope": {}}]), "mot.baselines.0: unknown baseline"),
    ("baseline-two-names-in-one", S("mot.baselines", [{"single": {}, "union": {}}]), "mot.baselines"),
    ("baseline-settings-it-takes-none", S("mot.baselines", [{"single": {"x": 1}}]), "mot.baselines.0.single.x"),
    ("baselines-twice", S("mot.baselines", ["single", "single"]), "listed twice"),
    ("parallel-zero", S("mot.launch.parallel", 0), "mot.launch.parallel"),
    ("devices-too-few", both(S("mot.launch.parallel", 2), S("mot.launch.devices", ["0"])), "launch.devices"),
    ("port-low", S("mot.launch.port", 80), "mot.launch.port"),
    ("sbatch-newline", S("mot.launch.slurm.sbatch_args", ["--time=1\nrm -rf /"]), "mot.launch.slurm.sbatch_args.0"),
    ("sbatch-string", S("mot.launch.slurm.sbatch_args", "--time=1"), "mot.launch.slurm.sbatch_args"),
    ("poll-zero", S("mot.launch.slurm.poll_seconds", 0), "mot.launch.slurm.poll_seconds"),
    ("keep_branches-word", S("mot.keep_branches", "yes"), "mot.keep_branches"),
    ("license-unknown", S("mot.license", "do-what-you-like"), "mot.license: 'do-what-you-like' is neither"),
    ("license-expression", S("mot.license", "MIT OR Apache-2.0"), "mot.license"),
    ("license-int", S("mot.license", 2), "mot.license"),
    ("student_hub_id-path", S("mot.student_hub_id", "./toy/student"), "mot.student_hub_id"),
    ("student_hub_id-no-org", S("mot.student_hub_id", "gpt2"), "mot.student_hub_id: 'gpt2' is not a hub repository id"),
    ("student_hub_id-double-dash", S("mot.student_hub_id", "me/a--b"), "mot.student_hub_id"),
    ("eval-name-newline", both(S("mot.eval.data", lambda c: str(c.toy["eval"])), S("mot.eval.name", "a\nb")),
     "mot.eval.name"),
    ("unknown-mot-key", S("mot.roudns", 3), "mot.roudns"),
    ("axolotl-plugins-string", S("plugins", "evil"), "plugins"),
    ("axolotl-plugins-unknown", S("plugins", ["no_such_module.NoSuchPlugin"]), "plugins"),
    ("shared-max_steps", S("max_steps", 5), "max_steps"),
    ("shared-datasets", S("datasets", []), "datasets"),
    ("adapter-dora", S("adapter", "dora"), "adapter"),
    ("lora_model_dir-missing", both(S("adapter", "lora"), S("lora_model_dir", "./no-adapter")), "lora_model_dir"),
    ("axolotl-key-typo", S("learning_rat", 0.1), "learning_rat"),
    ("axolotl-bad-type", S("micro_batch_size", "four"), "micro_batch_size"),
]

GOOD = "base_model: {student}\nmot:\n  rounds: 1\n  steps_per_round: 1\n"
# (case id, recipe text (bytes), words the message must hold)
YAML_CASES = [
    ("yaml-invalid", b"a: [\n", "recipe.yaml:"),
    ("yaml-duplicate-top", b"a: 1\na: 2\nmot: {}\n", "recipe.yaml:2: not valid YAML (duplicate key 'a')"),
    ("yaml-duplicate-mot", b"base_model: x\nmot:\n  rounds: 1\n  rounds: 5\n", "recipe.yaml:4: not valid YAML (duplicate key 'rounds')"),
    ("yaml-alias", b"base: &b {lr: 1}\nmot: *b\n", "recipe.yaml:2: not valid YAML (YAML aliases"),
    ("yaml-merge-key", b"x: &b {rounds: 1}\nmot:\n  <<: *b\n", "recipe.yaml:3"),
    ("yaml-alias-bomb", b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(7)),
     "YAML aliases"),
    ("yaml-non-utf8", b"base_model: caf\xe9\nmot: {}\n", "recipe.yaml:1: not UTF-8"),
    ("yaml-binary", BINARY, "recipe.yaml:1"),
    ("yaml-nul", b"base_model: x\x00\nmot: {}\n", "recipe.yaml:1"),
    ("yaml-empty", b"", "recipe.yaml: a recipe must be a YAML mapping"),
    ("yaml-list", b"- a\n- b\n", "recipe.yaml: a recipe must be a YAML mapping"),
    ("yaml-scalar", b"hello\n", "recipe.yaml: a recipe must be a YAML mapping"),
    ("yaml-python-tag", b"base_model: !!python/object/apply:os.system [echo hi]\nmot: {}\n", "recipe.yaml:1"),
    ("yaml-list-key", b"? [a, b]\n: 1\nmot: {}\n", "recipe.yaml:1"),
    ("yaml-two-documents", b"a: 1\n---\nb: 2\n", "recipe.yaml"),
]

def ev(c: Ctx, *options: str) -> list[str]:
    """`mot eval` of the toy student on the toy eval file, with `options`."""
    return ["eval", str(c.toy["student"]), "--data", str(c.toy["eval"]), *options]


def _with_mot(c: Ctx, **mot: Any) -> str:
    """The good recipe as the text of a run directory's recipe.yaml, with `mot` keys set."""
    data = c.good()
    return yaml.safe_dump({**data, "mot": {**data["mot"], "run_dir": ".", **mot}})


def evd(c: Ctx, data: str, *options: str) -> list[str]:
    """`mot eval` of the toy student on `data`."""
    return ["eval", str(c.toy["student"]), "--data", data, *options]


# (case id, argv builder, words the message must hold)
CLI_CASES = [
    ("plan-missing-file", lambda c: ["plan", "nope.yaml"], "nope.yaml"),
    ("plan-a-directory", lambda c: ["plan", c.dir("adir")], "adir"),
    ("plan-seed-word", lambda c: ["plan", c.recipe(c.good()), "--seed", "x"], "--seed"),
    ("run-missing-file", lambda c: ["run", "nope.yaml"], "nope.yaml"),
    ("run-seed-word", lambda c: ["run", c.recipe(c.good()), "--seed", "x"], "--seed"),
    ("cli-eval-limit-zero", lambda c: ev(c, "--limit", "0"), "--limit"),
    ("eval-limit-negative", lambda c: ev(c, "--limit", "-3"), "--limit"),
    ("eval-limit-word", lambda c: ev(c, "--limit", "x"), "--limit"),
    ("cli-eval-samples-zero", lambda c: ev(c, "--samples", "0"), "--samples"),
    ("eval-samples-negative", lambda c: ev(c, "--samples", "-1"), "--samples"),
    ("eval-batch-zero", lambda c: ev(c, "--batch-size", "0"), "--batch-size"),
    ("eval-tokens-zero", lambda c: ev(c, "--max-new-tokens", "0"), "--max-new-tokens"),
    ("eval-temperature-negative",
     lambda c: ev(c, "--temperature", "-1"), "--temperature"),
    ("eval-model-empty-dir", lambda c: ["eval", c.dir("nomodel"), "--data", str(c.toy["eval"])], "nomodel"),
    ("eval-model-missing", lambda c: ["eval", "no-model", "--data", str(c.toy["eval"])], "no-model"),
    ("eval-model-tokenizer-only", lambda c: ["eval", c.file("tok/config.json", "{}") and str(c.tmp / "tok"),
                                             "--data", str(c.toy["eval"])], "tok"),
    ("eval-data-missing", lambda c: evd(c, "nope.jsonl"), "nope.jsonl"),
    ("eval-data-non-utf8", lambda c: evd(c, c.file("e.jsonl", NON_UTF8)), "e.jsonl:1"),
    ("eval-data-binary", lambda c: evd(c, c.file("e.jsonl", BINARY)), "e.jsonl:1"),
    ("eval-data-no-answer", lambda c: evd(c, c.file("e.jsonl", [{"prompt": "x"}])), "e.jsonl:1"),
    ("eval-data-empty-prompt",
     lambda c: evd(c, c.file("e.jsonl", [{"prompt": "", "answer": "1"}])), "e.jsonl:1"),
    ("eval-data-bad-gold",
     lambda c: evd(c, c.file("e.jsonl", [{"prompt": "x", "answer": "banana"}])),
     "e.jsonl:1"),
    ("eval-data-empty", lambda c: evd(c, c.file("e.jsonl", "")), "e.jsonl"),
    ("eval-data-tags-mapping",
     lambda c: evd(c, c.file("e.jsonl", [{"prompt": "x", "answer": "1", "tags": {"skill": True}}])), "e.jsonl:1: 'tags'"),
    ("eval-data-tag-empty",
     lambda c: evd(c, c.file("e.jsonl", [{"prompt": "x", "answer": "1", "tags": ""}])), "e.jsonl:1: 'tags'"),
    ("cli-eval-data-dir", lambda c: evd(c, c.dir("edir")), "edir"),
    ("eval-out-a-file", lambda c: ev(c, "--out", c.file("o", "x")), "--out"),
    ("init-source-nonsense", lambda c: ["init", "w", "--from", "not a source!"],
     "not a source!: neither a shipped recipe, a hub repository id (org/name[@revision]) nor a folder"),
    ("init-folder-without-recipe", lambda c: ["init", "w", "--from", c.dir("pushed")], "no recipe.yaml"),
    ("init-malformed-hashes", lambda c: [c.file("pub/recipe.yaml", yaml.safe_dump(c.good())),
                                         c.file("pub/data.json", '{"a.jsonl": {"sha256": 1}}'), "init", "w",
                                         "--from", str(c.tmp / "pub")][2:], "data.json: a.jsonl: not a hash entry"),
    ("init-existing-without-force", lambda c: [c.file("w/toy.yaml", "mine\n"), "init", "w", "--from", "toy"][1:],
     "--force"),
    ("init-unknown-allow", lambda c: ["init", "w", "--from", c.dir("pushed"), "--allow", "nope"], "--allow: unknown kind"),
    ("compare-not-a-run", lambda c: ["compare", "no-run", c.dir("emptyrun")], "no-run/recipe.yaml: not found"),
    ("status-missing", lambda c: ["status", "no-run"], "no-run"),
    ("status-no-recipe", lambda c: ["status", c.dir("emptyrun")], "emptyrun/recipe.yaml"),
    ("status-non-utf8", lambda c: ["status", c.run_dir(b"mot: caf\xe9\n")], "recipe.yaml:1"),
    ("status-binary", lambda c: ["status", c.run_dir(BINARY)], "recipe.yaml:1"),
    ("status-invalid-yaml", lambda c: ["status", c.run_dir("a: [")], "recipe.yaml"),
    ("status-list", lambda c: ["status", c.run_dir("- a\n")], "recipe.yaml"),
    ("status-no-mot", lambda c: ["status", c.run_dir("base_model: x\n")], "mot"),
    ("status-a-file", lambda c: ["status", c.file("afile", "x")], "afile"),
    ("report-missing", lambda c: ["report", "no-run"], "no-run"),
    ("report-binary", lambda c: ["report", c.run_dir(BINARY)], "recipe.yaml:1"),
    ("report-duplicate-key", lambda c: ["report", c.run_dir("mot: {}\nmot: {}\n")], "duplicate key"),
    ("toy-into-a-file", lambda c: ["toy", c.file("afile", "x")], "afile"),
    ("toy-over-files", lambda c: [c.file("mine/eval.jsonl", "mine"), "toy", str(c.tmp / "mine")][1:], "--force"),
    ("toy-pretrain-negative", lambda c: ["toy", "t", "--pretrain-steps", "-1"], "--pretrain-steps"),
    ("toy-seed-word", lambda c: ["toy", "t", "--seed", "x"], "--seed"),
    ("convert-non-utf8", lambda c: ["data", "convert", c.file("in.jsonl", NON_UTF8), "out.jsonl"], "in.jsonl:1"),
    ("convert-binary", lambda c: ["data", "convert", c.file("in.jsonl", BINARY), "out.jsonl"], "in.jsonl:1"),
    ("convert-onto-itself", lambda c: ["data", "convert", c.file("c.jsonl", [{"prompt": "a", "response": "b"}]),
                                       str(c.tmp / "c.jsonl")], "c.jsonl"),
    ("convert-over-existing", lambda c: ["data", "convert", c.file("in.jsonl", [{"prompt": "a", "response": "b"}]),
                                         c.file("out.jsonl", "mine\n")], "--force"),
    ("convert-format", lambda c: ["data", "convert", c.file("in.jsonl", "{}\n"), "o.jsonl", "--format", "xml"],
     "--format"),
    ("convert-template", lambda c: ["data", "convert", c.file("in.jsonl", "{}\n"), "o.jsonl", "--format", "s1k",
                                    "--think-template", "{thinking}"], "--think-template"),
    ("convert-missing-field", lambda c: ["data", "convert", c.file("in.jsonl", [{"prompt": "a"}]), "o.jsonl"], "in.jsonl:1"),
    ("convert-malformed", lambda c: ["data", "convert", c.file("in.jsonl", "{oops\n"), "o.jsonl"], "in.jsonl:1"),
    ("convert-missing-input", lambda c: ["data", "convert", "nope.jsonl", "o.jsonl"], "nope.jsonl"),
    ("convert-sharegpt-no-value", lambda c: ["data", "convert", c.file("in.jsonl", [{"conversations": [
        {"from": "human"}, {"from": "gpt", "value": "2"}]}]), "o.jsonl", "--format", "sharegpt"], "in.jsonl:1"),
    ("split-non-utf8", lambda c: ["data", "split", c.file("in.jsonl", NON_UTF8), "outdir"], "in.jsonl:1"),
    ("split-out-a-file", lambda c: ["data", "split", c.file("in.jsonl", [{"prompt": "a", "response": "b", "teacher": "t"}]),
                                    c.file("afile", "x")], "afile"),
    ("split-no-teacher", lambda c: ["data", "split", c.file("in.jsonl", [{"prompt": "a", "response": "b"}]), "outdir"],
     "in.jsonl:1"),
    ("split-bad-teacher-name", lambda c: ["data", "split", c.file("in.jsonl", [
        {"prompt": "a", "response": "b", "teacher": "../x"}]), "outdir"], "in.jsonl:1"),
    ("split-over-existing", lambda c: ["data", "split", c.file("in.jsonl", [{"prompt": "a", "response": "b", "teacher": "t"}]),
                                       str(Path(c.file("outdir/t.jsonl", "mine\n")).parent)], "--force"),
    ("filter-onto-input", lambda c: ["data", "filter", str(Path(c.file("t/a.jsonl", [CHAT])).parent),
                                     "--out", str(c.tmp / "t")], "a.jsonl"),
    ("filter-over-existing", lambda c: ["data", "filter", c.file("a.jsonl", [CHAT]),
                                        "--out", str(Path(c.file("out/a.jsonl", "mine\n")).parent)], "--force"),
    ("filter-non-utf8", lambda c: ["data", "filter", c.file("a.jsonl", NON_UTF8), "--out", "out"], "a.jsonl:1"),
    ("filter-no-messages", lambda c: ["data", "filter", c.file("a.jsonl", [{"text": "x"}]), "--out", "out"], "a.jsonl:1"),
    ("filter-no-content", lambda c: ["data", "filter", c.file("a.jsonl", [
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "2"}]}]), "--out", "out"], "a.jsonl:1"),
    ("filter-content-int", lambda c: ["data", "filter", c.file("a.jsonl", [
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "2"}]}]), "--out", "out"],
     "a.jsonl:1"),
    ("filter-ngram-zero", lambda c: ["data", "filter", c.file("a.jsonl", [CHAT]), "--out", "out", "--ngram", "0"],
     "--ngram"),
    ("filter-eval-non-utf8", lambda c: ["data", "filter", c.file("a.jsonl", [CHAT]), "--out", "out",
                                        "--eval", c.file("e.jsonl", NON_UTF8)], "e.jsonl:1"),
    ("filter-missing-input", lambda c: ["data", "filter", "nope.jsonl", "--out", "out"], "nope.jsonl"),
    ("filter-empty-dir", lambda c: ["data", "filter", c.dir("nothing"), "--out", "out"], "nothing"),
    ("stats-non-utf8", lambda c: ["data", "stats", c.file("a.jsonl", NON_UTF8), "--tokenizer", str(c.toy["student"])],
     "a.jsonl:1"),
    ("stats-no-messages", lambda c: ["data", "stats", c.file("a.jsonl", [{"x": 1}]), "--tokenizer", str(c.toy["student"])],
     "a.jsonl:1"),
    ("stats-no-tokenizer", lambda c: ["data", "stats", c.file("a.jsonl", [CHAT]), "--tokenizer", c.dir("notok")],
     "notok"),
    ("generate-non-utf8", lambda c: ["data", "generate", c.file("p.jsonl", NON_UTF8), "--teacher",
                                     "t=http://127.0.0.1:9", "--out", "gen"], "p.jsonl:1"),
    ("generate-bad-teacher", lambda c: ["data", "generate", c.file("p.jsonl", [{"prompt": "x"}]), "--teacher",
                                        "t", "--out", "gen"], "--teacher"),
    ("generate-prompts-is-output", lambda c: ["data", "generate", c.file("gen/t.jsonl", [{"prompt": "x"}]),
                                              "--teacher", "t=http://127.0.0.1:9", "--out", str(c.tmp / "gen")],
     "t.jsonl"),
    ("generate-over-existing", lambda c: [c.file("gen/t.jsonl", "mine\n"), "data", "generate",
                                          c.file("p.jsonl", [{"prompt": "x"}]), "--teacher", "t=http://127.0.0.1:9",
                                          "--out", str(c.tmp / "gen")][1:], "--force"),
    ("champ-out-a-file", lambda c: ["data", "champ", c.file("afile", "x")], "afile"),
    ("champ-fraction", lambda c: ["data", "champ", "ch", "--eval-fraction", "2"], "--eval-fraction"),
    ("gguf-not-gguf", lambda c: ["student-from-gguf", "st", "--gguf", c.file("m.gguf", "not a gguf")], "m.gguf"),
    ("push-bad-license", lambda c: ["push", c.run_dir(_with_mot(c, license="nope")), "me/x"], "mot.license"),
    ("push-bad-student_hub_id", lambda c: ["push", c.run_dir(_with_mot(c, student_hub_id="a/b/c")), "me/x"],
     "mot.student_hub_id"),
    ("push-bad-repo-id", lambda c: ["push", c.run_dir(_with_mot(c)), "me/x y"], "REPO_ID: 'me/x y'"),
    ("unknown-command", lambda c: ["plna"], "plna"),
    ("unknown-option", lambda c: ["plan", "--frobnicate"], "--frobnicate"),
]


def _tree(*roots: Path) -> dict[str, tuple]:
    """Every path under `roots` with its kind, size and mtime (symlinks not followed)."""
    found = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                stat = os.lstat(os.path.join(dirpath, name))
                found[os.path.join(dirpath, name)] = (stat.st_mode, stat.st_size, stat.st_mtime_ns)
    return found


def _refused(ctx: Ctx, argv: list[str], expected: str, monkeypatch) -> None:
    monkeypatch.setattr(runner._Scheduler, "run", lambda *a, **k: pytest.fail("bad input reached training"))
    before = _tree(ctx.tmp, ctx.toy["student"].parent)
    result = CliRunner().invoke(main, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mot: error: "), result.stderr
    assert expected in lines[0], lines[0]
    assert _tree(ctx.tmp, ctx.toy["student"].parent) == before, "a refused command changed files"


@pytest.fixture
def ctx(toy, tmp_path, monkeypatch) -> Ctx:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return Ctx(tmp_path, toy)


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("case_id, edit, expected", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_bad_recipe(ctx, monkeypatch, command, case_id, edit, expected):
    data = copy.deepcopy(ctx.good())
    edit(data, ctx)
    _refused(ctx, [command, ctx.recipe(data)], expected, monkeypatch)


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("case_id, text, expected", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_bad_recipe_text(ctx, monkeypatch, command, case_id, text, expected):
    _refused(ctx, [command, ctx.file("recipe.yaml", text)], expected, monkeypatch)


@pytest.mark.parametrize("case_id, argv, expected", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(ctx, monkeypatch, case_id, argv, expected):
    _refused(ctx, argv(ctx), expected, monkeypatch)


def test_corpus_size_and_the_good_recipe_plans(ctx):
    """The corpus holds 100+ distinct bad inputs, and the recipe they edit is itself good."""
    assert len(RECIPE_CASES) + len(YAML_CASES) + len(CLI_CASES) >= 100
    assert len({c[0] for c in RECIPE_CASES + YAML_CASES + CLI_CASES}) == len(RECIPE_CASES + YAML_CASES + CLI_CASES)
    result = CliRunner().invoke(main, ["plan", ctx.recipe(ctx.good())])
    assert result.exit_code == 0, result.output


def test_home_in_run_dir_is_expanded(ctx):
    data = ctx.good()
    data["mot"]["run_dir"] = "~/runs/x"
    result = CliRunner().invoke(main, ["plan", ctx.recipe(data)])
    assert result.exit_code == 0, result.output
    assert (ctx.tmp / "home" / "runs" / "x" / "recipe.yaml").is_file()
    assert not (ctx.tmp / "~").exists()
