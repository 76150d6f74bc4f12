"""Starting from a shared run: a finished fast run published as `mot push` lays out a repository,
a recipe started from it (`mot init --from` a pushed folder, a run directory, a local stand-in of the
hub), its inputs compared with the published hashes by `mot plan` and `mot run` (`--strict` refuses a
difference), and two runs compared by `mot compare`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from hub_server import HubServer
from mot_plugin.cli import main
from mot_plugin.commands.common import run_dir_plan as _run_dir_plan
from mot_plugin.published import with_mot_keys
from mot_plugin.push import uploads

pytestmark = pytest.mark.usefixtures("one_torch_thread")
INPUTS = ["base_model", "mot.teachers.0.datasets.0.path", "mot.teachers.1.datasets.0.path", "mot.eval.data"]


def mot(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _author_run(toy, root: Path, monkeypatch) -> Path:
    """A finished fast run in root/author of a recipe naming its inputs relatively (copies beside it):
    as a person would publish it. Returns the author's folder."""
    author = root / "author"
    (author / "data").mkdir(parents=True)
    monkeypatch.chdir(author)
    shutil.copytree(toy["student"], "student")
    shutil.copy(toy["eval"], "eval.jsonl")
    local = {f"teacher:{name}": Path(shutil.copy(toy[f"teacher:{name}"], "data")) for name in ("brief", "wordy")}
    data = recipe_data({**toy, **local}, Path("run"), rounds=2, **FAST, eval={"data": "eval.jsonl"})
    data["base_model"] = "./student"
    result = mot("run", write_recipe(Path("r.yaml"), data))
    assert result.exit_code == 0, result.output
    return author


def _publish(run_dir: Path, hub: Path) -> Path:
    """The run laid out as `mot push --revisions` commits it, one folder per revision
    (hub/me/toy-mot/<revision>/...); returns main's folder."""
    for commit in uploads(_run_dir_plan(str(run_dir)), revisions=True):
        for name, content in commit.files.items():
            target = hub / "me/toy-mot" / commit.revision / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content if isinstance(content, bytes) else content.read_bytes())
    return hub / "me/toy-mot/main"


@pytest.fixture
def shared(toy, tmp_path, monkeypatch) -> dict[str, Path]:
    """An author's finished run, published to tmp/hub and copied as a pushed folder to tmp/toy-mot;
    the working directory is tmp/user."""
    author = _author_run(toy, tmp_path, monkeypatch)
    pushed = shutil.copytree(_publish(author / "run", tmp_path / "hub"), tmp_path / "toy-mot")
    (tmp_path / "user").mkdir()
    monkeypatch.chdir(tmp_path / "user")
    return {"author": author, "hub": tmp_path / "hub", "pushed": pushed, "user": tmp_path / "user"}


def _supply(author: Path, work: Path) -> None:
    """Copy the author's inputs where the started recipe names them (from `work`)."""
    shutil.copytree(author / "student", work / "student")
    shutil.copytree(author / "data", work / "data")
    shutil.copy(author / "eval.jsonl", work / "eval.jsonl")


def _states(output: str) -> dict[str, str]:
    """Input key -> its state, from the lines `mot init`, `mot plan` and `mot run` print."""
    found = {}
    for line in output.splitlines():
        for state in ("same data", "different data", "missing", "not published", "not in this recipe"):
            rest = line.strip().removeprefix(state)
            if line.startswith("  ") and rest != line.strip() and rest.split() and rest.split()[0] in INPUTS:
                found[rest.split()[0]] = state
    return found


def test_init_from_a_pushed_folder_then_plan_checks_every_input(shared):
    refused = mot("init", "work", "--from", shared["pushed"])
    assert refused.exit_code == 3 and "RISK    plugin" in refused.output and "--allow plugin" in refused.output
    assert not Path("work").exists(), "nothing written"
    result = mot("init", "work", "--from", shared["pushed"], "--allow", "plugin")
    assert result.exit_code == 0, result.output
    assert _states(result.output) == dict.fromkeys(INPUTS, "missing")
    published_data = json.loads((shared["pushed"] / "data.json").read_text())
    assert f"sha256 {published_data['data/brief.jsonl']['sha256']}" in result.output
    assert f"config.json  sha256 {published_data['./student/config.json']['sha256']}" in result.output
    recipe = yaml.safe_load(Path("work/toy-mot.yaml").read_text())
    pushed_recipe = yaml.safe_load((shared["pushed"] / "recipe.yaml").read_text())
    assert recipe == {**pushed_recipe, "mot": {**pushed_recipe["mot"], "run_dir": "runs/toy-mot",
                                               "published": "toy-mot.published.json"}}
    hashes = json.loads(Path("work/toy-mot.published.json").read_text())
    assert hashes["source"] == str(shared["pushed"]) and list(hashes["inputs"]) == INPUTS
    wordy = published_data["data/wordy.jsonl"]
    assert hashes["inputs"]["mot.teachers.1.datasets.0.path"] == {"path": "data/wordy.jsonl", "sha256": wordy["sha256"],
                                                                   "size": wordy["size"]}
    student = hashes["inputs"]["base_model"]
    assert student["path"] == "./student" and set(student["files"]) == {
        name.removeprefix("./student/") for name in published_data if name.startswith("./student/")}
    again = mot("init", "work", "--from", shared["pushed"], "--allow", "plugin")
    assert again.exit_code == 2 and "toy-mot.yaml: exists; pass --force" in again.output

    _supply(shared["author"], Path("work"))
    import os

    os.chdir("work")
    same = mot("plan", "toy-mot.yaml")
    assert same.exit_code == 0, same.output
    assert _states(same.output) == dict.fromkeys(INPUTS, "same data")
    with open("data/wordy.jsonl", "a") as changed:
        changed.write(Path("data/wordy.jsonl").read_text().splitlines()[0] + "\n")
    different = mot("plan", "toy-mot.yaml")
    assert different.exit_code == 0 and _states(different.output) == {
        **dict.fromkeys(INPUTS, "same data"), "mot.teachers.1.datasets.0.path": "different data"}
    before = {p: p.stat().st_mtime_ns for p in Path("runs").rglob("*")}
    for command in ("plan", "run"):
        strict = mot(command, "toy-mot.yaml", "--strict")
        errors = [line for line in strict.stderr.splitlines() if line.startswith("mot: error:")]
        assert strict.exit_code == 2 and len(errors) == 1, strict.output
        assert "mot.teachers.1.datasets.0.path: data/wordy.jsonl: different data (sha256 " in errors[0]
    assert {p: p.stat().st_mtime_ns for p in Path("runs").rglob("*")} == before, "nothing planned or run"


def test_init_from_the_hub_stand_in_downloads_what_was_published(shared, monkeypatch):
    import huggingface_hub

    server = HubServer(shared["hub"])
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    try:
        result = mot("init", "work", "--from", "me/toy-mot@round-01", "--allow", "plugin")
        missing = mot("init", "elsewhere", "--from", "me/no-such-repo")
        revision = mot("init", "elsewhere", "--from", "me/toy-mot@round-09")
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert ("GET", "/me/toy-mot/resolve/round-01/data.json") in server.requests
    published = shared["hub"] / "me/toy-mot/round-01"
    assert with_mot_keys((published / "recipe.yaml").read_text(), {
        "run_dir": "runs/toy-mot", "published": "toy-mot.published.json"}) == Path("work/toy-mot.yaml").read_text()
    hashes = json.loads(Path("work/toy-mot.published.json").read_text())
    published_data = json.loads((published / "data.json").read_text())
    assert hashes["source"] == "me/toy-mot@round-01"
    assert {e["path"]: e["sha256"] for e in hashes["inputs"].values() if "sha256" in e} == {
        path: published_data[path]["sha256"] for path in ("data/brief.jsonl", "data/wordy.jsonl", "eval.jsonl")}
    assert missing.exit_code == 2 and "me/no-such-repo@main: no such hub repository" in missing.output
    assert revision.exit_code == 2 and "has no revision 'round-09'" in revision.output
    assert not Path("elsewhere").exists()


def test_init_from_a_run_directory_and_compare_runs(shared):
    run_dir = shared["author"] / "run"
    result = mot("init", "work", "--from", run_dir, "--allow", "plugin")
    assert result.exit_code == 0, result.output
    assert Path("work/run.yaml").is_file() and "run_dir: \"runs/run\"" in Path("work/run.yaml").read_text()
    hashes = json.loads(Path("work/run.published.json").read_text())["inputs"]
    assert hashes["mot.teachers.0.datasets.0.path"]["path"] == "data/brief.jsonl", "as the author wrote it"
    recorded = json.loads((run_dir / "data.json").read_text())
    assert hashes["mot.teachers.0.datasets.0.path"]["sha256"] == recorded[
        str(shared["author"] / "data/brief.jsonl")]["sha256"]

    copy = shutil.copytree(run_dir, shared["user"] / "copy")
    same = mot("compare", run_dir, copy, "--json")
    assert same.exit_code == 0, same.output
    comparison = json.loads(same.output)
    assert comparison["identical"] and comparison["recipe"] == []
    assert [r["evaluation"] for r in comparison["evaluations"]] == ["round-00", "round-01", "round-02"]
    assert {r["input"]: r["state"] for r in comparison["data"]} == dict.fromkeys(INPUTS, "same data")
    text = mot("compare", run_dir, copy).output
    assert "| round-02 |" in text and "no answers kept (samples.jsonl)" in text and "Identical: all 3" in text


def test_compare_names_what_differs(shared):
    author = shared["author"]
    data = yaml.safe_load((author / "r.yaml").read_text())
    data["mot"]["run_dir"], data["mot"]["seed"] = "other", 7
    (author / "data/wordy.jsonl").write_text((author / "data/wordy.jsonl").read_text() + "\n")
    import os

    os.chdir(author)
    assert mot("run", write_recipe(Path("other.yaml"), data)).exit_code == 0
    result = mot("compare", "run", "other", "--json")
    comparison = json.loads(result.output)
    assert not comparison["identical"]
    assert {r["key"]: (r["a"], r["b"]) for r in comparison["recipe"]} == {"mot.seed": (42, 7)}
    assert {r["input"]: r["state"] for r in comparison["data"]} == {
        **dict.fromkeys(INPUTS, "same data"), "mot.teachers.1.datasets.0.path": "different data"}
    assert "Different: " in mot("compare", "run", "other").output


@pytest.mark.parametrize("case, words", [
    ("nonsense", "nonsense: neither a shipped recipe, a hub repository id"),
    ("no-recipe", "no recipe.yaml (neither a run directory nor what mot push publishes)"),
    ("bad-hashes", "data.json: data/brief.jsonl: not a hash entry"),
    ("no-hashes", "data.json: not found"),
])
def test_init_refuses_a_bad_source(shared, case, words):
    source = {"nonsense": "not a source!"}.get(case, shared["pushed"])
    if case == "no-recipe":
        (shared["pushed"] / "recipe.yaml").unlink()
    if case == "bad-hashes":
        hashes = json.loads((shared["pushed"] / "data.json").read_text())
        hashes["data/brief.jsonl"]["sha256"] = "abc"
        (shared["pushed"] / "data.json").write_text(json.dumps(hashes))
    if case == "no-hashes":
        (shared["pushed"] / "data.json").unlink()
    result = mot("init", "work", "--from", source, "--allow", "plugin")
    assert result.exit_code == 2 and words.replace("nonsense", "not a source!") in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not Path("work").exists()


def test_plan_refuses_malformed_published_hashes(shared):
    assert mot("init", "work", "--from", shared["pushed"], "--allow", "plugin").exit_code == 0
    _supply(shared["author"], Path("work"))
    import os

    os.chdir("work")
    Path("toy-mot.published.json").write_text(json.dumps({"inputs": {"base_model": {"path": "x", "sha256": 5}}}))
    result = mot("plan", "toy-mot.yaml")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "toy-mot.yaml: mot.published: " in result.output and "inputs.base_model: not a hash entry" in result.output
    assert not Path("runs").exists()
    strict = mot("plan", str(shared["author"] / "r.yaml"), "--strict")
    assert strict.exit_code == 2 and "--strict: the recipe has no mot.published hashes" in strict.output


def test_with_mot_keys_keeps_comments_or_rewrites():
    text = "# how to make the data\nbase_model: x  # the student\nmot:\n  # where\n  run_dir: runs/a  # old\n  rounds: 2\n"
    assert with_mot_keys(text, {"run_dir": "runs/b", "published": "b.published.json"}) == (
        '# how to make the data\nbase_model: x  # the student\nmot:\n  published: "b.published.json"\n  # where\n'
        '  run_dir: "runs/b"\n  rounds: 2\n')
    flow = with_mot_keys("base_model: x\nmot: {rounds: 2}\n", {"run_dir": "runs/b"})
    assert flow.startswith("# Written by mot init") and yaml.safe_load(flow) == {
        "base_model": "x", "mot": {"rounds": 2, "run_dir": "runs/b"}}
