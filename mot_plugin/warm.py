"""The warm executor's server: imports torch, transformers, Axolotl, mergekit and the evaluator once,
then runs each step's `python -m MODULE ARGS` in a fork of itself, so no step pays for Python's start
and imports again, and each step still starts from a fresh copy of every module's global state.

Protocol (started by `mot_plugin.process.WarmExecutor` as `python -P -m mot_plugin.warm`): one JSON
request a line on stdin, `{"id", "module", "args", "log", "env", "cwd"}`; one JSON reply a line on
stdout, `{"id", "code"}`, once that step's process has exited. Several steps may run at once. When
stdin closes (`mot run` ended or died) the server kills what still runs and exits.

Nothing here may start a thread pool or touch CUDA before a fork: a child picks its number of threads
(`OMP_NUM_THREADS`) and its devices (`CUDA_VISIBLE_DEVICES`) from its own environment.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import runpy
import select
import signal
import sys
import time
import traceback

import setproctitle

PRELOAD = (
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "peft",
    "trl",
    "axolotl.cli.config",
    "axolotl.cli.train",
    "axolotl.cli.preprocess",
    "axolotl.train",
    "axolotl.common.datasets",
    "axolotl.core.builders",
    "axolotl.utils.trainer",
    "axolotl.loaders",
    "mergekit.scripts.run_yaml",
    "mergekit.merge",
    "mot_plugin.axolotl_plugin",
    "mot_plugin.evaluate",
)
"""What every step would import: each is imported once here (a missing one is skipped)."""


def preload(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - the step that needs it will fail with its own error
            print(f"mot warm: not preloaded: {name}: {err}", file=sys.stderr, flush=True)


def _exit_code(code: object) -> int:
    """`sys.exit(code)` as the interpreter turns it into an exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_child(request: dict, closing: list[int]) -> None:  # pragma: no cover - runs in a fork
    """In the forked child: become `python -P -m MODULE ARGS` with the step's environment, directory
    and log (and its command line as the process's title, as `ps` shows it), run the module as `__main__`,
    and exit with its status."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in closing:
            os.close(fd)
        from mot_plugin.process import die_with_parent

        die_with_parent()
        setproctitle.setproctitle(" ".join([sys.executable, "-P", "-m", request["module"], *request["args"]]))
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=True, write_through=True)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _reread_environment()
        module = request["module"]
        sys.argv = ["-m", *request["args"]]
        sys.modules.pop(module, None)  # run afresh as __main__, not the preloaded copy
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = _exit_code(exit_.code)
        except BaseException:  # noqa: BLE001 - what the interpreter prints for an uncaught exception
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    finally:
        os._exit(code)


def _reread_environment() -> None:
    """Settings that libraries read once, at import, from the environment: read them again from the
    step's: PYTHONPATH's entries not yet on sys.path; torch's number of threads (fixed when torch is imported) from OMP_NUM_THREADS or
    MKL_NUM_THREADS; the Hugging Face Hub's settings (HF_HUB_OFFLINE, HF_HOME ...)."""
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")
    torch = sys.modules.get("torch")
    if torch is not None and threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        importlib.reload(constants)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:0] = paths


def serve() -> None:
    """Read requests until stdin closes; fork a child for each; reply with each child's status."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a stray print goes to the server's log, never into the replies
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    pending = b""
    reading = True
    while reading or children:
        ready, _, _ = select.select([0, wake_r] if reading else [wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        if 0 in ready:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                reading = False
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    run_child(request, [wake_r, wake_w, replies.fileno()])
                children[pid] = request["id"]
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            request_id = children.pop(pid, None)
            if request_id is not None and reading:
                replies.write(json.dumps({"id": request_id, "code": os.waitstatus_to_exitcode(status)}) + "\n")


def main() -> None:
    """`python -P -m mot_plugin.warm [MODULE ...]`: preload the modules (default: PRELOAD), then serve."""
    started = time.time()
    names = sys.argv[1:] or list(PRELOAD)
    gc.disable()
    preload(names)
    gc.freeze()  # the preloaded objects are never collected: a child's collections leave their pages shared
    gc.enable()
    print(f"mot warm: server {os.getpid()} preloaded {len(names)} modules in {time.time() - started:.1f}s",
          file=sys.stderr, flush=True)
    serve()


if __name__ == "__main__":
    main()
