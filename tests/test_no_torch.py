"""Commands that only read a recipe or a run directory import no torch (1-3 s, and it is what a
login node may lack): `mot plan` once its Axolotl validation is cached, `plan --preview`, `status`,
`report`, `check` and `init`. Each runs in a fresh Python that then says whether torch was imported.
(The first, uncached `mot plan` validates every branch config with Axolotl, which imports torch.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FAST, recipe_data, write_recipe
from mot_plugin.cli import main

ROOT = Path(__file__).parents[1]
PROBE = """
import sys
from mot_plugin.cli import main
try:
    main(sys.argv[1:], prog_name="mot")
except SystemExit as end:
    code = end.code
print("torch imported:", "torch" in sys.modules, "exit:", code)
"""


def _mot(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


@pytest.fixture(scope="module")
def runs(toy, tmp_path_factory):
    """A planned recipe with the built-in launcher and merge executor (mergekit: its methods' facts
    are planning's old way to torch), and a finished fast run (a fake launcher, the example executor)."""
    tmp = tmp_path_factory.mktemp("no-torch")
    planned = write_recipe(tmp / "planned.yaml", recipe_data(toy, tmp / "planned", rounds=1))
    assert CliRunner().invoke(main, ["plan", str(planned)]).exit_code == 0  # validates with Axolotl: torch
    finished = write_recipe(tmp / "finished.yaml", recipe_data(toy, tmp / "finished", rounds=1, **FAST,
                                                               eval={"data": str(toy["eval"])}))
    ran = CliRunner().invoke(main, ["run", str(finished)])
    assert ran.exit_code == 0, ran.output
    return tmp


@pytest.mark.parametrize("args, code", [
    (["plan", "planned.yaml"], 0), (["plan", "--preview", "planned.yaml"], 0),
    (["check", "planned.yaml"], 3),  # 3: the toy's files lie outside the recipe's folder
    (["status", "planned"], 0), (["report", "planned"], 0), (["status", "finished"], 0), (["report", "finished"], 0),
    (["init", "fresh", "--from", "toy"], 0),
], ids=lambda arg: " ".join(arg) if isinstance(arg, list) else str(arg))
def test_command_imports_no_torch(runs, args, code):
    assert _mot(runs, *args) == f"torch imported: False exit: {code}"
