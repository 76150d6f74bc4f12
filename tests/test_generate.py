"""`mot data generate` against a loopback OpenAI-compatible server that answers with the toy student."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from chat_server import ChatServer
from mot_plugin.cli import main
from mot_plugin.data.generate import GenerateError, load_cache, parse_teacher

ROOT = Path(__file__).parents[1]
FAST = ["--max-tokens", "16", "--temperature", "0", "--backoff", "0.01"]


@pytest.fixture(scope="module")
def server(toy):
    srv = ChatServer(toy["student"])
    yield srv
    srv.close()


@pytest.fixture
def prompts(toy, tmp_path, server) -> Path:
    """Six held-out problems with ids and gold answers; the server's faults and counters are reset."""
    server.reset()
    rows = [json.loads(line) for line in toy["eval"].read_text().splitlines()[:6]]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", **row}) + "\n" for i, row in enumerate(rows)))
    return path


def gen(prompts: Path, out: Path, *teachers: str, extra=()):
    args = ["data", "generate", str(prompts), "--out", str(out), *FAST, *extra]
    for t in teachers:
        args += ["--teacher", t]
    return CliRunner().invoke(main, args)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_teachers_end_to_end(server, prompts, tmp_path, toy):
    from mot_plugin.evaluate import generate

    out = tmp_path / "out"
    result = gen(prompts, out, f"a={server.url},model=ma", f"b={server.url}/v1/,model=mb",
                 extra=["--samples-per-prompt", "2"])
    assert result.exit_code == 0, result.output
    assert "a: 12/12 samples (12 generated, 0 from cache, 0 failed)" in result.output
    assert Counter(model for model, _ in server.served) == {"ma": 12, "mb": 12}
    source = rows(prompts)
    expected = generate(toy["student"], [source[0]["prompt"]], max_new_tokens=16)[0][0]
    for name in ("a", "b"):
        got = rows(out / f"{name}.jsonl")
        assert [(r["id"], r["sample"]) for r in got] == [(p["id"], k) for p in source for k in (0, 1)]
        assert [r["answer"] for r in got[::2]] == [p["answer"] for p in source]
        assert all(r["messages"][0] == {"role": "user", "content": p["prompt"]} for r, p in zip(got[::2], source))
        assert {r["messages"][1]["role"] for r in got} == {"assistant"}
        assert got[0]["messages"][1]["content"] == got[1]["messages"][1]["content"] == expected
        assert len(rows(out / "cache" / f"{name}.jsonl")) == 12
    server.reset()
    again = gen(prompts, out, f"a={server.url},model=ma", f"b={server.url},model=mb",
                extra=["--samples-per-prompt", "3", "--force"])
    assert again.exit_code == 0, again.output
    assert "b: 18/18 samples (6 generated, 12 from cache, 0 failed)" in again.output
    assert server.requests == 12 and len(rows(out / "a.jsonl")) == 18


def test_reasoning_content_goes_into_think(server, prompts, tmp_path):
    server.reset(reasoning="12+30=42")
    result = gen(prompts, tmp_path / "out", f"r={server.url}")
    assert result.exit_code == 0, result.output
    for row in rows(tmp_path / "out" / "r.jsonl"):
        assert row["messages"][1]["content"].startswith("<think>\n12+30=42\n</think>\n\n")


def test_503_is_retried(server, prompts, tmp_path):
    server.reset(fail_first=4)
    result = gen(prompts, tmp_path / "out", f"t={server.url}", extra=["--concurrency", "1"])
    assert result.exit_code == 0, result.output
    assert server.requests == 10 and len(server.served) == 6
    assert len(rows(tmp_path / "out" / "t.jsonl")) == 6


def test_refusal_fails_that_request_only(server, prompts, tmp_path):
    marked = rows(prompts)[2]["prompt"]
    server.reset(refuse=marked)
    out = tmp_path / "out"
    out.mkdir()
    (out / "t.jsonl").write_text("a final file of an earlier run\n")
    refused = gen(prompts, out, f"t={server.url}", f"u={server.url},model=mu")
    assert refused.exit_code == 2 and "t.jsonl: exists; pass --force" in refused.stderr and server.requests == 0
    result = gen(prompts, out, f"t={server.url}", f"u={server.url},model=mu", extra=["--force"])
    assert result.exit_code == 1
    assert "t: 5/6 samples (5 generated, 0 from cache, 1 failed)" in result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("mot: error: teacher ") for e in errors)
    assert f"teacher t ({server.url}/v1/chat/completions): 1 requests failed; first: prompt 'p2' sample 0: " \
           "HTTP 400" in errors[0]
    assert server.requests == 12  # no retry of a refusal
    assert (out / "t.jsonl").read_text() == "a final file of an earlier run\n", "replaced only once complete"
    assert not (out / "u.jsonl").exists()
    assert len(rows(out / "cache" / "t.jsonl")) == 5
    server.reset()
    again = gen(prompts, out, f"t={server.url}", f"u={server.url},model=mu", extra=["--force"])
    assert again.exit_code == 0, again.output
    assert sorted(server.served, key=str) == [("mu", marked), (None, marked)]  # the teachers run concurrently
    assert len(rows(out / "t.jsonl")) == 6


def test_endpoint_down_stops_that_teacher(prompts, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = gen(prompts, tmp_path / "out", f"t=http://127.0.0.1:{port}", extra=["--retries", "2"])
    assert result.exit_code == 1
    (error,) = result.stderr.splitlines()
    assert error.startswith(f"mot: error: teacher t (http://127.0.0.1:{port}/v1/chat/completions): 6 requests failed")
    assert "ConnectError" in error and "(after 2 retries)" in error
    assert not (tmp_path / "out" / "t.jsonl").exists()


def test_concurrency_is_bounded(server, prompts, tmp_path):
    server.reset(delay=0.2)
    result = gen(prompts, tmp_path / "out", f"t={server.url}", extra=["--concurrency", "3", "--samples-per-prompt", "2"])
    assert result.exit_code == 0, result.output
    assert server.requests == 12 and server.max_in_flight == 3


def _wait(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_resume_after_kill_pays_each_sample_once(server, prompts, tmp_path):
    server.reset(delay=0.5)
    out = tmp_path / "out"
    cache = out / "cache" / "t.jsonl"
    cmd = [sys.executable, "-m", "mot_plugin.cli", "data", "generate", str(prompts), "--out", str(out),
           "--teacher", f"t={server.url}", "--samples-per-prompt", "2", "--concurrency", "2", *FAST]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: cache.is_file() and cache.read_text().count("\n") >= 4, 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    _wait(lambda: server.in_flight == 0, 10)
    cached = load_cache(cache)
    assert 4 <= len(cached) < 12 and not (out / "t.jsonl").exists()
    server.reset()
    result = gen(prompts, out, f"t={server.url}", extra=["--samples-per-prompt", "2"])
    assert result.exit_code == 0, result.output
    assert server.requests == 12 - len(cached)
    paid = Counter(row["prompt"] for row in cached.values()) + Counter(p for _, p in server.served)
    assert paid == {p["prompt"]: 2 for p in rows(prompts)}
    assert len(rows(out / "t.jsonl")) == 12


def test_torn_cache_line_is_cut(tmp_path):
    cache = tmp_path / "t.jsonl"
    whole = json.dumps({"id": "p0", "sample": 0, "prompt": "q", "completion": "c"}) + "\n"
    cache.write_text(whole + '{"id": "p1", "sam')
    assert list(load_cache(cache)) == [("p0", 0)]
    assert cache.read_text() == whole


@pytest.mark.parametrize("spec, why", [
    ("nourl", "expected NAME=URL"),
    ("t=localhost:8000", "URL must start with http"),
    ("t=http://h,modle=x", "bad option 'modle=x'"),
    ("bad/name=http://h", "NAME: letters"),
])
def test_bad_teacher_spec(spec, why):
    with pytest.raises(GenerateError, match=why):
        parse_teacher(spec)


def test_teacher_spec():
    t = parse_teacher("r1=https://api.example.com/v1,model=deepseek-r1,api_key_env=KEY")
    assert (t.name, t.model, t.api_key_env) == ("r1", "deepseek-r1", "KEY")
    assert t.chat_url == "https://api.example.com/v1/chat/completions"


@pytest.mark.parametrize("lines, teachers, message", [
    (['{"id": 1, "prompt": "a"}', '{"id": 2, "question": "b"}'], ["t=http://127.0.0.1:9"],
     "prompts.jsonl:2: 'prompt' must be a non-empty string"),
    (['{"id": 1, "prompt": "a"}', '{"id": "1", "prompt": "b"}'], ["t=http://127.0.0.1:9"],
     "prompts.jsonl:2: duplicate id '1' (first on line 1)"),
    (['{"prompt": "a"}', "{not json"], ["t=http://127.0.0.1:9"], "prompts.jsonl:2: malformed JSONL line"),
    (['{"prompt": "a"}'], ["t=127.0.0.1:9"], "--teacher 't=127.0.0.1:9': expected NAME=URL"),
    (['{"prompt": "a"}'], ["t=http://127.0.0.1:9", "t=http://127.0.0.1:8"], "distinct NAME"),
    (['{"prompt": "a"}'], ["t=http://127.0.0.1:9,api_key_env=MOT_TEST_UNSET_KEY"],
     "teacher t: environment variable MOT_TEST_UNSET_KEY is not set"),
])
def test_bad_input_is_one_line(tmp_path, lines, teachers, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = gen(path, tmp_path / "out", *teachers)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("mot: error: ") and message in line


def test_provenance_is_written_next_to_each_file_and_recorded_by_a_run(server, prompts, tmp_path):
    import hashlib

    from mot_plugin.datahash import DataHashes

    out = tmp_path / "out"
    result = gen(prompts, out, f"a={server.url},model=ma", f"b={server.url}")
    assert result.exit_code == 0, result.output
    a, b = (json.loads((out / f"{name}.provenance.json").read_text()) for name in ("a", "b"))
    assert (a["model"], a["requested_model"], b["model"], b["requested_model"]) == ("ma", "ma", "toy", None)
    assert a["endpoint"] == f"{server.url}/v1/chat/completions" and (a["temperature"], a["max_tokens"]) == (0.0, 16)
    assert a["prompts_sha256"] == hashlib.sha256(prompts.read_bytes()).hexdigest() and a["date"].startswith("20")
    hashes = DataHashes(tmp_path / "run")
    hashes.datasets([{"path": str(out / "a.jsonl")}])
    assert hashes.used[str(out / "a.jsonl")]["provenance"] == a
