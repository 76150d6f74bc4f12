"""The error types `mot` reports, and reading the user's files without a traceback.

Every bad input raises a `UserError` (or a subclass: `RecipeError`, `DataError`, `EvalError` ...)
whose message is one line naming the file, key or line at fault; a step of a run that fails raises
`StepFailed`. The `mot` command prints either as `mot: error: <message>` and exits 2 (bad input) or
1 (a failed step).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from mot_plugin.fields import PATTERN_MESSAGES

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters (newlines included): refused wherever a value reaches a script or a path."""


class UserError(ValueError):
    """Bad input: a one-line message naming the file, key or line at fault."""


class StepFailed(RuntimeError):
    """A step of a run failed; the message is one line that names its log."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `mot: error: <message>` as one line (control characters escaped) and exit with `code`:
    the one way every `mot` command reports an error."""
    print("mot: error: " + CONTROL.sub(lambda m: repr(m.group())[1:-1], message), file=sys.stderr, flush=True)
    sys.exit(code)


def read_text(path: Path, error: type[Exception] = UserError) -> str:
    """The UTF-8 text in `path`; raise `error` naming the file (and line) if it is not readable text."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: a directory, not a file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x})") from None
    if "\x00" in text:
        raise error(f"{path}:{text[: text.index(chr(0))].count(chr(10)) + 1}: binary data (a NUL byte), not text")
    return text


class _StrictLoader(yaml.SafeLoader):
    """YAML without aliases (no alias bombs, no hidden sharing) and without duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                        key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(path: Path, error: type[Exception] = UserError) -> Any:
    """The YAML document in `path` (strict: no aliases, no duplicate keys); raise `error` naming the line."""
    text = read_text(path, error)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise error(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None


def no_control(value: str, where: str, error: type[Exception] = UserError) -> str:
    """`value` if it holds no control character (a newline would break out of a script line)."""
    found = CONTROL.search(value)
    if found:
        raise error(f"{where}: holds a control character ({found.group()!r}); not allowed here")
    return value


def first_error(err: ValidationError) -> tuple[tuple, str]:
    """pydantic's first error: where it is (its `loc`) and what is wrong, as one line."""
    first = err.errors()[0]
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    if first["type"] == "string_pattern_mismatch":
        msg = f"{PATTERN_MESSAGES.get(first['ctx']['pattern'], msg)}: {first['input']!r}"
    return tuple(first["loc"]), (msg.strip().splitlines() or [first["type"]])[0]


def validation_message(err: ValidationError, prefix: str) -> str:
    """pydantic's first error as one line, `<prefix>.<key>: <what is wrong>`."""
    loc, msg = first_error(err)
    return f"{'.'.join(str(p) for p in (prefix, *loc))}: {msg}"
