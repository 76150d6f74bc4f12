"""The local launcher's placement: device groups, rendezvous ports and thread counts per slot."""

from __future__ import annotations

import json
import threading

from conftest import recipe_data
from mot_plugin.builtin import axolotl_branch
from mot_plugin.planner import plan_run
from mot_plugin.plugins import plugin_manager
from mot_plugin.recipe import parse_recipe
from mot_plugin.steps import RESULT_FILE


def _branches(toy, tmp_path, **launch):
    recipe = parse_recipe(recipe_data(toy, tmp_path / "run", teachers=("brief", "wordy", "tensfirst"), rounds=1,
                                      launch=launch))
    plan = plan_run(recipe, plugin_manager().hook)
    return recipe, [s for s in plan.steps if s.kind == "branch"]


def _run_all_at_once(recipe, steps, monkeypatch):
    """Run the launcher for every branch in its own thread, all inside `run_logged` at once."""
    seen: dict[str, tuple[list[str], dict[str, str]]] = {}
    warm: dict[str, object] = {}
    inside = threading.Barrier(recipe.mot.launch.parallel, timeout=10)

    def fake_run_logged(step_id, cmd, log_path, env=None, warm_in=None):
        seen[step_id] = (cmd, env)
        warm[step_id] = warm_in
        if len(seen) <= recipe.mot.launch.parallel:
            inside.wait()  # the first `parallel` branches hold their slots together
        step = next(s for s in steps if s.id == step_id)
        step.output_dir.mkdir(parents=True)
        (step.output_dir / RESULT_FILE).write_text(json.dumps({"steps": 1}))

    monkeypatch.setattr(axolotl_branch, "run_logged", fake_run_logged)
    hook = plugin_manager().hook  # the recipe selects the registered `local` launcher
    threads = [threading.Thread(target=hook.mot_run_branch, kwargs={"recipe": recipe, "step": s}) for s in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return seen, warm


def test_concurrent_multi_process_branches_get_their_own_devices_and_ports(toy, tmp_path, monkeypatch):
    recipe, steps = _branches(toy, tmp_path, parallel=2, devices=["0,1", "2,3"], processes=2, port=29600)
    seen, warm = _run_all_at_once(recipe, steps, monkeypatch)
    assert len(seen) == 3
    assert set(warm.values()) == {None}, "accelerate launch starts processes of its own: always cold"
    for cmd, env in seen.values():
        assert cmd[1:4] == ["-P", "-m", "accelerate.commands.launch"] and cmd[4:6] == ["--num_processes", "2"]
        assert cmd[-3:-1] == ["-m", "axolotl.cli.train"]
    first_two = [seen[s.id] for s in steps[:2]]
    assert {env["CUDA_VISIBLE_DEVICES"] for _, env in first_two} == {"0,1", "2,3"}
    assert {cmd[cmd.index("--main_process_port") + 1] for cmd, _ in first_two} == {"29600", "29601"}
    where = [json.loads(s.where_path.read_text()) for s in steps]
    assert all(w["launcher"] == "local" and w["devices"] in ("0,1", "2,3") for w in where)


def test_cpu_branches_share_the_cores(toy, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(axolotl_branch.os, "cpu_count", lambda: 8)
    recipe, steps = _branches(toy, tmp_path, parallel=2)
    seen, warm = _run_all_at_once(recipe, steps, monkeypatch)
    assert set(warm.values()) == {recipe.run_dir}, "single-process local branches run warm by default"
    for cmd, env in seen.values():
        assert cmd[1:] == ["-P", "-m", "axolotl.cli.train", cmd[-1]] and env["OMP_NUM_THREADS"] == "4"
        assert "CUDA_VISIBLE_DEVICES" not in env
