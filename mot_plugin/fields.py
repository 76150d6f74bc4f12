"""The constrained strings of recipes and plugin settings, and what to say when a value breaks one."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

LINE = r"^[^\x00-\x1f\x7f]*$"
MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Line = Annotated[str, Field(pattern=LINE)]
"""A string without control characters (no newline can break out of a script or a comment line)."""
Module = Annotated[str, Field(pattern=MODULE)]
"""A Python module name (`pkg.module`)."""
SIZE = r"^\d+ ?([KMG]i?B)?$"
"""A size in bytes, as transformers' `max_shard_size` reads it: `5GB` (10^9), `2GiB` (2^30), `1000`."""
NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"
Name = Annotated[str, Field(pattern=NAME)]
"""The name of a registered launcher, merge executor, baseline or eval backend."""
PATTERN_MESSAGES = {LINE: "holds a newline or another control character", MODULE: "not a Python module name",
                    SIZE: "not a size such as 5GB, 500MB, 2GiB or a number of bytes",
                    NAME: "not a name (letters, digits, _ and -)"}
