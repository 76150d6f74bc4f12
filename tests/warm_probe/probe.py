"""A step for the executor tests: `python -m probe OUT [CODE|raise|sleep]` writes what it sees as a
step (threads, argv, cwd, environment) to OUT, prints a line, and exits with CODE."""

import json
import os
import sys
import time

import torch
from huggingface_hub import constants

out = sys.argv[1]
with open(out, "w") as f:
    json.dump({"threads": torch.get_num_threads(), "argv": sys.argv[1:], "cwd": os.getcwd(), "name": __name__,
               "probe_env": os.environ.get("MOT_PROBE"), "offline": constants.HF_HUB_OFFLINE,
               "pid": os.getpid(), "ppid": os.getppid(),
               "title": open(f"/proc/{os.getpid()}/cmdline").read().replace("\0", " ").strip()}, f)
print("probe ran", flush=True)
action = sys.argv[2] if len(sys.argv) > 2 else "0"
if action == "raise":
    raise ValueError("the probe failed on purpose")
if action == "sleep":
    time.sleep(600)
sys.exit(int(action))
