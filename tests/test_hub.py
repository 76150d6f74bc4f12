"""Hub-correct cards and pushes: base_model, relation, license and model-index as the hub reads them
(huggingface_hub parses every card), and `mot push` against a local stand-in of the hub's API, each
revision compared file by file with the run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from hub_standin import GITATTRIBUTES, HubStandIn
from mot_plugin.cli import main
from mot_plugin.hub import PROVENANCE_FILE, student_origin
from mot_plugin.recipe import parse_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(toy, tmp_path: Path, monkeypatch, rounds: int = 2, **mot) -> Path:
    """A finished fast run (fake branches, mean merges, real evaluations and report) in tmp_path/run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    local = {**toy, **{f"teacher:{t}": Path(shutil.copy(toy[f"teacher:{t}"], "data")) for t in ("brief", "wordy")}}
    data = recipe_data(local, Path("run"), rounds=rounds, **FAST, eval={"data": str(toy["eval"]), "name": "toy-sums"},
                       **mot)
    result = CliRunner().invoke(main, ["run", str(write_recipe(Path("r.yaml"), data))])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def _checked_card(path: Path):
    """The card, loaded by huggingface_hub (which refuses a malformed model-index), its base_model a repo id."""
    from huggingface_hub import ModelCard
    from huggingface_hub.utils import validate_repo_id

    card = ModelCard.load(path)
    if card.data.base_model:
        validate_repo_id(card.data.base_model)
    return card


def test_cards_name_the_hub_student_their_relation_license_and_own_results(toy, tmp_path, monkeypatch):
    run_dir = _run(toy, tmp_path, monkeypatch, student_hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                   license="Apache-2.0")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    first, final = (_checked_card(run_dir / f"round-0{r}/merged/README.md") for r in (1, 2))
    for card, round_, relation in ((first, 1, "finetune"), (final, 2, "merge")):
        data = card.data.to_dict()
        assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert data["base_model_relation"] == relation and data["license"] == "apache-2.0"
        (result,) = card.data.eval_results  # this model's own accuracy only
        assert (result.dataset_name, result.dataset_type, result.metric_type) == ("toy-sums", "toy-sums", "accuracy")
        assert result.metric_value == round(metrics["mot"][round_]["accuracy"], 4)
        assert len(str(result.metric_value)) <= 6
    assert f"- parent: the student `{toy['student']}`" in first.text
    assert "- parent: round 1, `round-01/merged`" in final.text
    text = final.text
    student = f"{100 * metrics['mot'][0]['accuracy']:.1f}%"
    assert "| the student (round 0) | " + student in text and "| this model (round 2) |" in text
    assert "| round 1 |" in text and "## Results on toy-sums" in text


def test_a_local_student_without_hub_id_is_named_in_the_body_only(toy, tmp_path, monkeypatch):
    run_dir = _run(toy, tmp_path, monkeypatch, rounds=1)
    card = _checked_card(run_dir / "round-01/merged/README.md")
    data = card.data.to_dict()
    assert "base_model" not in data and "base_model_relation" not in data and "license" not in data
    assert "no known hub id (set mot.student_hub_id), so this card names no base_model" in card.text


def _student(tmp_path: Path, **files: str) -> Path:
    student = tmp_path / "student"
    student.mkdir()
    for name, text in files.items():
        (student / name).write_text(text)
    return student


@pytest.mark.parametrize("files, hub_id, license_", [
    ({PROVENANCE_FILE: json.dumps({"hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0"})},
     "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    ({"config.json": json.dumps({"_name_or_path": "Qwen/Qwen3-0.6B"}), "README.md": "---\nlicense: MIT\n---\n# x\n"},
     "Qwen/Qwen3-0.6B", "mit"),
    ({"config.json": json.dumps({"_name_or_path": "/home/someone/qwen"})}, None, None),
])
def test_where_a_local_students_hub_id_and_license_come_from(tmp_path, files, hub_id, license_):
    student = _student(tmp_path, **files)
    recipe = parse_recipe(recipe_data({"student": student, "teacher:a": "a.jsonl", "teacher:b": "b.jsonl"},
                                      tmp_path / "run", teachers=("a", "b")))
    origin = student_origin(recipe)
    assert (origin.hub_id, origin.license) == (hub_id, license_)
    named = student_origin(parse_recipe({**recipe.to_dict(), "base_model": str(student), "mot": {
        **recipe.to_dict()["mot"], "student_hub_id": "me/my-student", "license": "BSD-4-Clause"}}))
    assert (named.hub_id, named.license) == ("me/my-student", "BSD-4-Clause"), "the recipe's word first"


def test_an_spdx_license_the_hub_does_not_list_is_other_with_name_and_link():
    from mot_plugin.hub import card_license

    assert card_license("BSD-4-Clause") == {"license": "other", "license_name": "bsd-4-clause",
                                            "license_link": "https://spdx.org/licenses/BSD-4-Clause.html"}
    assert card_license("llama3.1") == {"license": "llama3.1"}


@pytest.fixture
def hub(monkeypatch):
    """The stand-in hub, and huggingface_hub pointed at it (online for it only)."""
    from huggingface_hub import constants

    stand_in = HubStandIn()
    monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
    monkeypatch.setattr(constants, "ENDPOINT", stand_in.url)  # HfApi() in this test
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_standin")
    yield stand_in
    stand_in.close()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_revisions_hold_exactly_their_own_files(toy, tmp_path, monkeypatch, hub):
    run_dir = _run(toy, tmp_path, monkeypatch, rounds=2, student_hub_id="me/student")
    dry = CliRunner().invoke(main, ["push", str(run_dir), "me/mot", "--revisions", "--dry-run"])
    assert dry.exit_code == 0 and not hub.repos, dry.output
    listed = {}
    for line in dry.output.splitlines():
        if line.startswith("me/mot@"):
            revision = listed.setdefault(line.split("@")[1].split(":")[0], [])
        elif line.startswith("  "):
            revision.append(line.split()[0])
    pushed = CliRunner().invoke(main, ["push", str(run_dir), "me/mot", "--revisions"])
    assert pushed.exit_code == 0, pushed.output
    repo = hub.repos["me/mot"]
    assert sorted(repo.branches) == ["main", "round-01", "round-02"]
    main_files = hub.files("me/mot", "main")
    published = {"recipe.yaml": (run_dir / "recipe.source.yaml").read_bytes(), "data.json": main_files["data.json"]}
    hashes = json.loads(main_files["data.json"])
    assert {"data/brief.jsonl", "data/wordy.jsonl"} <= set(hashes), "paths as the recipe wrote them"
    assert any(path.endswith("eval.jsonl") for path in hashes), "the eval file is content-fingerprinted too"
    final = {"main": run_dir / "round-02/merged", "round-01": run_dir / "round-01/merged",
             "round-02": run_dir / "round-02/merged"}
    for revision, folder in final.items():
        files = hub.files("me/mot", revision)
        assert files == {".gitattributes": GITATTRIBUTES, **_tree(folder), **published}, \
            f"{revision}: that round's model files, the recipe and the hashes, nothing else"
        assert sorted(files) == sorted(listed[revision]), "the dry run lists exactly what the revision holds"
        assert repo.history(revision)[-1].id == repo.history("main")[-1].id, "from the first commit, not main"
    second = _checked_card(run_dir / "round-02/merged/README.md")
    assert "- parent: round 1, `me/mot` revision `round-01`" in second.text

    # an extra file on a round's branch is removed by the next push; what is up already is not sent again
    from huggingface_hub import CommitOperationAdd, HfApi

    HfApi().create_commit("me/mot", operations=[CommitOperationAdd("stale.bin", b"x")], commit_message="extra",
                          revision="round-01")
    puts = sum(1 for method, _ in hub.requests if method == "PUT")
    again = CliRunner().invoke(main, ["push", str(run_dir), "me/mot", "--revisions"])
    assert again.exit_code == 0, again.output
    assert "stale.bin" not in hub.files("me/mot", "round-01")
    assert sum(1 for method, _ in hub.requests if method == "PUT") == puts, "no LFS object uploaded twice"


@pytest.mark.slow
def test_a_pushed_merge_config_replays_from_another_directory(toy, tmp_path, monkeypatch, hub):
    """Real mergekit merges (of fake branches): the pushed `mergekit_config.yml` names models relative
    to the run directory, and `mergekit-yaml` run from inside a copy of it makes the same weights."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    monkeypatch.chdir(tmp_path)
    data = recipe_data(toy, Path("run"), rounds=2, plugins=["fake_launcher"], keep_branches=True)
    result = CliRunner().invoke(main, ["run", str(write_recipe(Path("r.yaml"), data))])
    assert result.exit_code == 0, result.output
    pushed = CliRunner().invoke(main, ["push", "run", "me/replay"])
    assert pushed.exit_code == 0, pushed.output
    files = hub.files("me/replay", "main")
    config = yaml.safe_load(files["mergekit_config.yml"])
    assert [m["model"] for m in config["models"]] == ["round-02/branch-brief/model", "round-02/branch-wordy/model"]
    assert str(tmp_path) not in files["mergekit_config.yml"].decode()
    assert "mergekit-yaml round-02/merged/mergekit_config.yml OUT" in files["README.md"].decode()
    downloaded = tmp_path / "download" / "mergekit_config.yml"
    downloaded.parent.mkdir()
    downloaded.write_bytes(files["mergekit_config.yml"])
    copy = tmp_path / "elsewhere" / "run-copy"
    shutil.copytree(tmp_path / "run", copy)
    shutil.rmtree(tmp_path / "run")  # nothing of the original place is left to find
    replay = subprocess.run([str(Path(sys.executable).parent / "mergekit-yaml"), str(downloaded), "out"], cwd=copy,
                            capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    (tmp_path / "model.safetensors").write_bytes(files["model.safetensors"])
    mine, theirs = load_file(copy / "out/model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)
