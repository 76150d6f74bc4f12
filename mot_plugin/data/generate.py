"""`mot data generate`: sample chains of thought from OpenAI-compatible teacher endpoints, resumably.

Every finished sample is appended at once to OUT_DIR/cache/<teacher>.jsonl, keyed by (prompt id,
sample index); a rerun asks only for the samples that are not there. OUT_DIR/<teacher>.jsonl (Axolotl
chat_template rows) is written, atomically, only once every sample of that teacher is cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

from mot_plugin.atomic import atomic_file, write_json
from mot_plugin.data.output import check_output
from mot_plugin.datahash import provenance_path
from mot_plugin.errors import UserError, fail
from mot_plugin.jsonl import read_jsonl


class GenerateError(UserError):
    """Bad input (prompts file, --teacher, cache); the message is one line."""


@dataclass(frozen=True)
class Teacher:
    """One teacher endpoint, from `NAME=URL[,model=M][,api_key_env=VAR]`."""

    name: str
    url: str
    model: str | None = None
    api_key_env: str | None = None

    @property
    def chat_url(self) -> str:
        base = self.url.rstrip("/")
        return base + ("" if base.endswith("/v1") else "/v1") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise GenerateError(f"teacher {self.name}: environment variable {self.api_key_env} is not set")
        return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Settings:
    """The sampling and request options of `mot data generate` (see its --help)."""

    samples: int
    concurrency: int
    max_tokens: int
    temperature: float
    retries: int
    timeout: float
    backoff: float


class RequestFailed(Exception):
    """A request that failed for good; `retried` is True when retries were exhausted (endpoint down)."""

    def __init__(self, message: str, retried: bool):
        super().__init__(message)
        self.retried = retried


def parse_teacher(spec: str) -> Teacher:
    """Parse `NAME=URL[,model=M][,api_key_env=VAR]`."""
    usage = f"--teacher {spec!r}: expected NAME=URL[,model=M][,api_key_env=VAR]"
    name, eq, rest = spec.partition("=")
    url, *options = rest.split(",")
    if not eq or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise GenerateError(f"{usage} (NAME: letters, digits, '_', '.', '-')")
    if not re.match(r"https?://[^/\s]+", url):
        raise GenerateError(f"{usage} (URL must start with http:// or https://)")
    fields = {}
    for option in options:
        key, eq, value = option.partition("=")
        if key not in ("model", "api_key_env") or not eq or not value or key in fields:
            raise GenerateError(f"{usage} (bad option {option!r})")
        fields[key] = value
    return Teacher(name, url, **fields)


def load_prompts(path: Path) -> list[dict]:
    """Rows of {"id": str, "prompt", "answer"?}; `id` defaults to the line number."""
    if not path.is_file():
        raise GenerateError(f"{path}: prompts file not found")
    rows, seen = [], {}
    for line, row in read_jsonl(path, GenerateError):
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise GenerateError(f"{path}:{line}: 'prompt' must be a non-empty string")
        pid = row.get("id", line)
        if isinstance(pid, bool) or not isinstance(pid, (str, int)):
            raise GenerateError(f"{path}:{line}: 'id' must be a string or an integer")
        if str(pid) in seen:
            raise GenerateError(f"{path}:{line}: duplicate id {pid!r} (first on line {seen[str(pid)]})")
        seen[str(pid)] = line
        rows.append({"id": str(pid), "prompt": prompt,
                     **({"answer": row["answer"]} if "answer" in row else {})})
    if not rows:
        raise GenerateError(f"{path}: no prompts")
    return rows


def load_cache(path: Path) -> dict[tuple[str, int], dict]:
    """Cached samples by (prompt id, sample); a torn last line (a kill mid-write) is cut off."""
    if not path.is_file():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
    cache = {}
    for line, row in read_jsonl(path, GenerateError):
        if not isinstance(row.get("id"), str) or not isinstance(row.get("sample"), int):
            raise GenerateError(f"{path}:{line}: not a cache row (delete the file to start over)")
        cache[(row["id"], row["sample"])] = row
    return cache


def completion_text(message: dict) -> str:
    """The assistant text, with a vLLM `reasoning_content` (or `reasoning`) put in `<think>` first."""
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content


def _retry_after(response) -> float:
    try:
        return float(response.headers.get("retry-after", 0))
    except ValueError:
        return 0.0


async def _complete(client, teacher: Teacher, headers: dict, prompt: str, settings: Settings) -> dict:
    """One chat completion: retried with exponential backoff on transport errors, timeouts, 429 and 5xx."""
    import httpx

    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": settings.max_tokens,
            "temperature": settings.temperature}
    if teacher.model:
        body["model"] = teacher.model
    for attempt in range(settings.retries + 1):
        wait = 0.0
        try:
            response = await client.post(teacher.chat_url, json=body, headers=headers, timeout=settings.timeout)
        except httpx.TransportError as err:
            error = f"{type(err).__name__}: {err}".rstrip(": ")
        else:
            if response.status_code == 200:
                try:
                    choice = response.json()["choices"][0]
                    return {"completion": completion_text(choice["message"]),
                            "finish_reason": choice.get("finish_reason"), "model": response.json().get("model")}
                except (ValueError, LookupError, TypeError, AttributeError):
                    raise RequestFailed(f"malformed response: {response.text[:200]!r}", False) from None
            error = f"HTTP {response.status_code}: {' '.join(response.text.split())[:200]}"
            if response.status_code != 429 and response.status_code < 500:
                raise RequestFailed(error, False)
            wait = _retry_after(response)
        if attempt < settings.retries:
            await asyncio.sleep(min(max(wait, settings.backoff * 2 ** attempt), 60) * random.uniform(1, 1.25))
    raise RequestFailed(f"{error} (after {settings.retries} retries)", True)


async def _generate_teacher(client, teacher: Teacher, prompts: list[dict], cache_path: Path,
                            settings: Settings) -> dict:
    """Fill one teacher's cache; return counts and the first failure. After a request exhausts its
    retries (the endpoint is down), the teacher's remaining requests are not sent."""
    headers = teacher.headers()
    cache = load_cache(cache_path)
    todo = [(p, k) for p in prompts for k in range(settings.samples)
            if cache.get((p["id"], k), {}).get("prompt") != p["prompt"]]
    stats = {"cached": len(prompts) * settings.samples - len(todo), "done": 0, "failed": 0, "error": None}
    semaphore, down = asyncio.Semaphore(settings.concurrency), asyncio.Event()

    async def one(prompt: dict, k: int, out) -> None:
        async with semaphore:
            if down.is_set():
                stats["failed"] += 1
                return
            try:
                got = await _complete(client, teacher, headers, prompt["prompt"], settings)
            except RequestFailed as err:
                stats["failed"] += 1
                stats["error"] = stats["error"] or f"prompt {prompt['id']!r} sample {k}: {err}"
                if err.retried:
                    down.set()
                return
        out.write(json.dumps({"id": prompt["id"], "sample": k, "prompt": prompt["prompt"], **got}) + "\n")
        out.flush()
        stats["done"] += 1

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with cache_path.open("a", encoding="utf-8") as out:
        await asyncio.gather(*(one(p, k, out) for p, k in todo))
    return stats


def _provenance(teacher: Teacher, prompts_path: Path, prompts: list[dict], cache: dict, settings: Settings) -> dict:
    """What produced a teacher's file: the model as the endpoint named it in its responses (None for
    samples cached before it was recorded), the endpoint, sampling settings, the date, the prompts' hash."""
    reported = {cache[(p["id"], k)].get("model") for p in prompts for k in range(settings.samples)}
    return {"teacher": teacher.name, "model": ", ".join(sorted(m for m in reported if m)) or None,
            "requested_model": teacher.model, "endpoint": teacher.chat_url, "temperature": settings.temperature,
            "max_tokens": settings.max_tokens, "samples_per_prompt": settings.samples,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "prompts": prompts_path.name,
            "prompts_sha256": hashlib.sha256(prompts_path.read_bytes()).hexdigest()}


def _write_output(path: Path, prompts: list[dict], cache: dict, samples: int) -> None:
    """Write the teacher's chat_template rows to path, complete or not at all."""
    with atomic_file(path) as f:
        for p in prompts:
            for k in range(samples):
                got = cache[(p["id"], k)]
                messages = [{"role": "user", "content": p["prompt"]},
                            {"role": "assistant", "content": got["completion"]}]
                row = {"id": p["id"], "messages": messages, **({"answer": p["answer"]} if "answer" in p else {}),
                       "sample": k, "finish_reason": got.get("finish_reason")}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


async def _generate_all(teachers, prompts, out_dir, settings):
    import httpx

    limits = httpx.Limits(max_connections=settings.concurrency * len(teachers))
    async with httpx.AsyncClient(limits=limits) as client:
        return await asyncio.gather(*(_generate_teacher(client, t, prompts, out_dir / "cache" / f"{t.name}.jsonl",
                                                        settings) for t in teachers))


def generate(prompts_path: Path, teachers: list[Teacher], out_dir: Path, settings: Settings, echo=print,
             force: bool = False) -> list[str]:
    """Generate every teacher's samples; echo a summary line per teacher; return one error line per
    teacher with failed requests (its final file is not written, its cache is kept). An existing
    final file is replaced (with `force`) only once the new one is complete."""
    prompts = load_prompts(prompts_path)
    names = [t.name for t in teachers]
    if not teachers or len(set(names)) < len(names):
        raise GenerateError("give each --teacher once, with a distinct NAME")
    for t in teachers:
        t.headers()
    for t in teachers:
        check_output(out_dir / f"{t.name}.jsonl", [prompts_path], force)
        check_output(out_dir / "cache" / f"{t.name}.jsonl", [prompts_path], force=True)
    results = asyncio.run(_generate_all(teachers, prompts, out_dir, settings))
    errors = []
    for teacher, stats in zip(teachers, results):
        total, final = len(prompts) * settings.samples, out_dir / f"{teacher.name}.jsonl"
        line = (f"{teacher.name}: {stats['done'] + stats['cached']}/{total} samples "
                f"({stats['done']} generated, {stats['cached']} from cache, {stats['failed']} failed)")
        if stats["failed"]:
            errors.append(f"teacher {teacher.name} ({teacher.chat_url}): {stats['failed']} requests failed; "
                          f"first: {stats['error']}")
            echo(f"{line}; no {final} written, rerun to resume")
        else:
            cache = load_cache(out_dir / "cache" / f"{teacher.name}.jsonl")
            write_json(provenance_path(final), _provenance(teacher, prompts_path, prompts, cache, settings))
            _write_output(final, prompts, cache, settings.samples)
            echo(f"{line} -> {final} (provenance: {provenance_path(final).name})")
    return errors


@click.command("generate")
@click.argument("prompts", type=click.Path(dir_okay=False))
@click.option("--teacher", "teachers", multiple=True, required=True, metavar="NAME=URL[,model=M][,api_key_env=VAR]",
              help="An OpenAI-compatible endpoint (repeat for several teachers).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--samples-per-prompt", "samples", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1),
              help="Requests in flight per teacher.")
@click.option("--max-tokens", default=16384, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(min=0))
@click.option("--retries", default=5, show_default=True, type=click.IntRange(min=0),
              help="Retries of a request on connection errors, timeouts, 429 and 5xx.")
@click.option("--timeout", default=900.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for a response (or to connect).")
@click.option("--force", is_flag=True, help="Replace existing output files (once the new ones are complete).")
@click.option("--backoff", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds before the first retry; doubled at each retry.")
def generate_command(prompts: str, teachers: tuple[str, ...], out: str, force: bool, **options) -> None:
    """Sample chains of thought for every prompt in PROMPTS (JSONL: prompt, optional id and answer)
    from each teacher; write OUT/<teacher>.jsonl once all its samples are in. Rerun to resume."""
    parsed = [parse_teacher(spec) for spec in teachers]
    try:
        errors = generate(Path(prompts), parsed, Path(out), Settings(**options), echo=click.echo, force=force)
    except KeyboardInterrupt:
        fail(f"interrupted; finished samples are cached in {Path(out) / 'cache'}, rerun to resume", 130)
    for error in errors:
        click.echo(f"mot: error: {error}", err=True)
    if errors:
        sys.exit(1)
