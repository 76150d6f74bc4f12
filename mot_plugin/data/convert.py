"""Converting a corpus to chat_template rows, streamed line by line: one file, or split by a teacher field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mot_plugin.data.formats import BadRow, Fields, to_messages
from mot_plugin.data.output import PartialFiles, check_output
from mot_plugin.data.rows import TEACHER_NAME, DataError
from mot_plugin.jsonl import read_jsonl


@dataclass
class Tally:
    """Rows written per teacher, and bad rows skipped (with the first one's message)."""

    written: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    first_skipped: str | None = None


def _teacher(row: dict, teacher_field: str) -> str:
    """The row's teacher name, checked to be a safe file name."""
    if teacher_field not in row:
        raise BadRow(f"missing field {teacher_field!r}")
    name = str(row[teacher_field])
    if not TEACHER_NAME.fullmatch(name):
        raise BadRow(f"{teacher_field} {name!r} is not a safe file name (letters, digits, '.', '_', '-')")
    return name


def chat_rows(path: Path, fmt: str, fields: Fields, *, answer_field: str = "answer", teacher_field: str | None = None,
              tally: Tally | None = None) -> Iterator[tuple[str | None, dict]]:
    """Yield (teacher or None, chat row) for each line of `path`, reading one line at a time.

    The row keeps `id` and the gold answer (from `answer_field`, written as `answer`) when present.
    A bad row raises `DataError` naming `path:line` and the missing field; with a `tally`, it is
    counted there and skipped instead.
    """
    for number, row in read_jsonl(path, DataError):
        try:
            teacher = _teacher(row, teacher_field) if teacher_field else None
            chat = {"messages": to_messages(row, fmt, fields)}
        except BadRow as err:
            message = f"{path}:{number}: {err} (format {fmt})"
            if tally is None:
                raise DataError(message) from None
            tally.skipped += 1
            tally.first_skipped = tally.first_skipped or message
            continue
        if "id" in row:
            chat["id"] = row["id"]
        if answer_field in row:
            chat["answer"] = row[answer_field]
        yield teacher, chat


def _check_some(path: Path, tally: Tally) -> None:
    """Refuse to write nothing: an empty corpus is a mistake, not a result."""
    if not tally.written:
        raise DataError(f"{path}: no rows converted" + (f" ({tally.skipped} bad rows skipped)" if tally.skipped else ""))


def convert_file(path: Path, out_file: Path, fmt: str, fields: Fields, *, answer_field: str = "answer",
                 skip_bad: bool = False, force: bool = False) -> Tally:
    """Convert one corpus file to one chat_template file (one teacher)."""
    tally = Tally()
    check_output(out_file, [path], force)
    with PartialFiles([path], force) as out:
        for _, row in chat_rows(path, fmt, fields, answer_field=answer_field, tally=tally if skip_bad else None):
            out.write_row(out_file, row)
            tally.written[out_file.stem] = tally.written.get(out_file.stem, 0) + 1
        _check_some(path, tally)
    return tally


def split_file(path: Path, out_dir: Path, fmt: str, fields: Fields, *, teacher_field: str = "teacher",
               answer_field: str = "answer", skip_bad: bool = False, force: bool = False) -> Tally:
    """Convert one corpus file holding several teachers into OUT_DIR/<teacher>.jsonl files."""
    tally = Tally()
    with PartialFiles([path], force) as out:
        for teacher, row in chat_rows(path, fmt, fields, answer_field=answer_field, teacher_field=teacher_field,
                                      tally=tally if skip_bad else None):
            out.write_row(out_dir / f"{teacher}.jsonl", row)
            tally.written[teacher] = tally.written.get(teacher, 0) + 1
        _check_some(path, tally)
    return tally
