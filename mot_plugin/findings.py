"""What `mot check` reports: a finding of what a recipe executes, reads, writes or contacts, and what
a registered entry says about the work it will do (`Description`: a job script, a command line)."""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("executes", "reads", "writes", "contacts")


@dataclass(frozen=True)
class Finding:
    section: str
    """One of SECTIONS."""
    kind: str | None
    """A kind of risky finding (`mot check --allow KIND`), or None when it is only listed."""
    key: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class Description:
    """What a launcher or merge executor will run, shown by `mot plan` and `mot check`."""

    title: str
    """One line, for example `job script of round-01/branch-a (every branch's differs only in its paths)`."""
    text: str
    """The script or command, shown line by line below the title."""
