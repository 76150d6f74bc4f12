"""`mot data ...`: the corpus commands."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from mot_plugin.data.formats import DEFAULT_THINK_TEMPLATE, FORMATS, Fields
from mot_plugin.data.generate import generate_command
from mot_plugin.data.rows import DataError, teacher_files


def _format_options(command):
    """The options that say how input rows are read (shared by convert and split)."""
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="prompt-response", show_default=True,
                     help="Input row shape."),
        click.option("--prompt-field", default=None, help="Prompt field [prompt-response: prompt; s1k: question]."),
        click.option("--response-field", default=None,
                     help="Response field [prompt-response: response; s1k: attempt]."),
        click.option("--thinking-field", default="thinking", show_default=True, help="s1k: the reasoning field."),
        click.option("--think-template", default=DEFAULT_THINK_TEMPLATE, show_default=repr(DEFAULT_THINK_TEMPLATE),
                     help="s1k: the response, from {thinking} and {attempt}."),
        click.option("--answer-field", default="answer", show_default=True,
                     help="Gold answer field, kept as `answer` when present."),
        click.option("--skip-bad", is_flag=True, help="Skip (and count) rows missing a field instead of stopping."),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def _fields(prompt_field, response_field, thinking_field, think_template) -> Fields:
    for placeholder in ("{thinking}", "{attempt}"):
        if placeholder not in think_template:
            raise DataError(f"--think-template must contain {placeholder}")
    return Fields(prompt_field, response_field, thinking_field, think_template)


def _report_tally(tally, where: str) -> None:
    for teacher, count in tally.written.items():
        click.echo(f"{teacher}: {count} rows")
    if tally.skipped:
        click.echo(f"skipped {tally.skipped} bad rows (first: {tally.first_skipped})", err=True)
    click.echo(f"Wrote {sum(tally.written.values())} rows to {where}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Turn teacher corpora into per-teacher Axolotl chat_template JSONL files, filter and inspect them."""


@data.command()
@click.argument("input_file", type=click.Path(dir_okay=False, exists=True))
@click.argument("out_file", type=click.Path(dir_okay=False))
@_format_options
@click.option("--force", is_flag=True, help="Replace existing output files.")
def convert(input_file, out_file, fmt, prompt_field, response_field, thinking_field, think_template, answer_field,
            skip_bad, force) -> None:
    """Convert INPUT_FILE (one teacher) to a chat_template JSONL file OUT_FILE."""
    from mot_plugin.data.convert import convert_file

    fields = _fields(prompt_field, response_field, thinking_field, think_template)
    tally = convert_file(Path(input_file), Path(out_file), fmt, fields, answer_field=answer_field, skip_bad=skip_bad,
                         force=force)
    _report_tally(tally, out_file)


@data.command()
@click.argument("input_file", type=click.Path(dir_okay=False, exists=True))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--teacher-field", default="teacher", show_default=True, help="The field naming each row's teacher.")
@_format_options
@click.option("--force", is_flag=True, help="Replace existing output files.")
def split(input_file, out_dir, teacher_field, fmt, prompt_field, response_field, thinking_field, think_template,
          answer_field, skip_bad, force) -> None:
    """Split INPUT_FILE (rows of several teachers) into chat_template files OUT_DIR/<teacher>.jsonl."""
    from mot_plugin.data.convert import split_file

    fields = _fields(prompt_field, response_field, thinking_field, think_template)
    tally = split_file(Path(input_file), Path(out_dir), fmt, fields, teacher_field=teacher_field,
                       answer_field=answer_field, skip_bad=skip_bad, force=force)
    _report_tally(tally, out_dir)


@data.command("filter")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--check-answers/--no-check-answers", default=True, show_default=True,
              help="Keep only responses whose final answer matches the gold `answer`.")
@click.option("--aligned", is_flag=True, help="Keep only prompts that every teacher answered correctly.")
@click.option("--dedup-prompts", is_flag=True, help="Keep one response per prompt and teacher.")
@click.option("--eval", "eval_file", type=click.Path(dir_okay=False), default=None,
              help="Evaluation JSONL (`prompt` per row) to check training prompts against.")
@click.option("--contamination", type=click.Choice(["warn", "exclude"]), default="warn", show_default=True,
              help="Rows sharing a word n-gram with an eval prompt: count them, or also drop them.")
@click.option("--ngram", default=13, show_default=True, help="Word n-gram length of the contamination check.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
def filter_(inputs, out_dir, check_answers, aligned, dedup_prompts, eval_file, contamination, ngram, force) -> None:
    """Filter per-teacher chat files (INPUTS: files or directories of *.jsonl) into OUT/<teacher>.jsonl
    and OUT/filter_report.json."""
    from mot_plugin.data.filter import FilterOptions, filter_corpus

    if ngram < 1:
        raise DataError("--ngram must be >= 1")
    opts = FilterOptions(check_answers=check_answers, aligned=aligned, dedup_prompts=dedup_prompts,
                         eval_file=Path(eval_file) if eval_file else None, contamination=contamination, ngram=ngram, force=force)
    report = filter_corpus(teacher_files(list(inputs)), Path(out_dir), opts)
    for teacher, c in report["teachers"].items():
        click.echo(f"{teacher}: {c['rows']} rows -> {c['written']} written; kept {c['kept']}, wrong {c['wrong']}, "
                   f"unparsable {c['unparsable']}, gold unparsable {c['gold_unparsable']}, "
                   f"gold missing {c['gold_missing']}, duplicates {c['duplicate'] + c['duplicate_prompt']}, "
                   f"eval overlap {c['eval_overlap']} ({c['contaminated']} excluded), not aligned {c['not_aligned']}")
    if report["aligned_prompts"] is not None:
        click.echo(f"aligned prompts (kept by every teacher): {report['aligned_prompts']}")
    overlap = sum(c["eval_overlap"] for c in report["teachers"].values())
    if overlap and contamination == "warn":
        click.echo(f"warning: {overlap} rows share a {ngram}-word n-gram with {eval_file} "
                   "(kept; --contamination exclude drops them)", err=True)
    click.echo(f"Wrote {Path(out_dir) / 'filter_report.json'}")


@data.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--tokenizer", required=True, type=click.Path(file_okay=False, exists=True),
              help="The student's model or tokenizer directory (lengths are in its tokens).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(inputs, tokenizer, as_json) -> None:
    """Rows, response length in student tokens, accuracy and answer agreement of per-teacher chat files."""
    from mot_plugin.data.stats import corpus_stats, format_table

    result = corpus_stats(teacher_files(list(inputs)), tokenizer)
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))


@data.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--eval-fraction", default=0.2, show_default=True,
              help="Share of the problems with a verifiable answer held out in eval.jsonl.")
@click.option("--seed", default=0, show_default=True, help="Seed of the held-out draw.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
def champ(out_dir, eval_fraction, seed, force) -> None:
    """Export the CHAMP corpus (4 real teachers, package champ-dataset) to OUT_DIR/all.jsonl and eval.jsonl."""
    from mot_plugin.data.champ import export_champ

    counts = export_champ(Path(out_dir), eval_fraction=eval_fraction, seed=seed, force=force)
    for teacher, rows in counts["rows"].items():
        click.echo(f"{teacher}: {rows} rows ({counts['truncated'][teacher]} truncated responses skipped)")
    click.echo(f"{counts['problems']} problems: {counts['train_problems']} in all.jsonl, {counts['eval']} held out "
               f"in eval.jsonl; {counts['gold_unparsable']} gold answers are not verifiable (filter drops them)")
    out = Path(out_dir)
    click.echo(f"Next: mot data split {out / 'all.jsonl'} {out / 'raw'}, then mot data filter {out / 'raw'} "
               f"--out {out / 'teachers'} --eval {out / 'eval.jsonl'} --contamination exclude")


data.add_command(generate_command)
