"""What the core asks of a registered entry besides running it: its `mot check` findings and the
kinds of risk they carry, what it describes for `mot plan`, and a merge's sizes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from conftest import FAST, recipe_data, write_recipe
from mot_plugin import check
from mot_plugin.cli import main
from mot_plugin.findings import Description, Finding
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import parse_recipe
from mot_plugin.registry import Launcher, collect


class TunnelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "gpu.example.org"


def _registry():
    entries = collect(plugin_manager(()).hook)
    entries(Launcher("tunnel", run_branch=print, settings=TunnelSettings,
                     describe=lambda recipe, step, settings: Description(f"ssh to {settings.host}", f"ssh {step.id}"),
                     findings=lambda recipe, settings: [Finding("contacts", "ssh", "mot.launch.tunnel.host", settings.host)],
                     risks={"ssh": "logs in to another machine"}))
    return entries


def test_a_launchers_findings_and_risks_reach_mot_check(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=1, launch={"launcher": "tunnel", "tunnel": {"host": "h"}})
    recipe = parse_recipe(data)
    entries = _registry()
    found = check.find(recipe, tmp_path, data, entries)
    assert found[-1] == Finding("contacts", "ssh", "mot.launch.tunnel.host", "h"), "the selected launcher's last"
    assert check.kinds(entries)["ssh"] == "logs in to another machine"
    assert "ssh" not in check.kinds(), "only registered entries add kinds"
    assert check.describe(recipe, entries) == [Description("ssh to h", "ssh round-01/branch-brief")]


def test_a_recipe_plugins_entries_are_skipped_by_mot_check(toy, tmp_path):
    """`mot check` imports no recipe plugin: a launcher it does not know has no findings there."""
    data = recipe_data(toy, tmp_path / "run", rounds=1, plugins=["counting_plugin"], launch={"launcher": "counting"})
    recipe = write_recipe(tmp_path / "r.yaml", data)
    result = CliRunner().invoke(main, ["check", str(recipe), "--allow", "plugin", "--allow", "outside-path"])
    assert result.exit_code == 0, result.output


def test_an_executor_without_sizes_leaves_the_io_unknown(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=1, plugins=["counting_plugin"], merge={"executor": "counting"})
    result = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", data))])
    assert "checkpoint I/O: unknown (merge executor counting reports no sizes)" in result.output, result.output


def test_the_example_executor_reports_what_it_reads(toy, tmp_path):
    data = recipe_data(toy, tmp_path / "run", rounds=1, **FAST)
    result = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", data))])
    assert result.exit_code == 0, result.output
    assert "merge reads " in result.output and "checkpoint I/O (0.8M parameters" in result.output
    assert not Path(tmp_path / "run" / "mergekit-methods.json").exists(), "mergekit's methods are shipped data"


def test_launch_devices_is_read_from_its_old_place_with_a_note(toy, tmp_path):
    """`launch.devices` moved into the local launcher's block, `launch.local.devices`."""
    old = recipe_data(toy, tmp_path / "run", rounds=1, **FAST, launch={"parallel": 2, "devices": ["0", "1"]})
    result = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", old))])
    assert result.exit_code == 0, result.output
    assert "note: mot.launch.devices: read as mot.launch.local.devices" in result.output
    assert parse_recipe(old).mot.launch.model_extra["local"] == {"devices": ["0", "1"]}
    both = recipe_data(toy, tmp_path / "run", rounds=1, launch={"devices": ["0"], "local": {"devices": ["1"]}})
    refused = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", both))])
    assert refused.exit_code == 2 and "launch.devices: moved to launch.local.devices" in refused.stderr
    new = recipe_data(toy, tmp_path / "run", rounds=1, launch={"parallel": 2, "local": {"devices": ["0"]}})
    short = CliRunner().invoke(main, ["plan", str(write_recipe(tmp_path / "r.yaml", new))])
    assert short.exit_code == 2 and "mot.launch.local.devices: 1 device groups for launch.parallel 2" in short.stderr
