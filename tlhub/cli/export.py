"""``tlhub export RUN --format onnx``: a model file that serves without PyTorch."""
from __future__ import annotations

import click

from tlhub.cli.base import user_errors


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Folder to write into (default: RUN/onnx).")
@user_errors
def export(run_dir, fmt, output):
    """Export the model of RUN_DIR (a run directory or its model/ folder) for serving.

    onnx: writes model.onnx (label names, preprocessing and the training config in its metadata;
    dynamic batch axis, and sequence axis for text) plus tokenizer/ for text models, then checks
    it against PyTorch with ONNX Runtime. `tlhub predict FOLDER_OR_FILE` serves it.
    """
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.export.onnx import export_onnx

    result = export_onnx(run_dir, output)
    click.echo(f"wrote {result.path} ({result.modality}; inputs {', '.join(result.inputs)}; "
               f"ONNX Runtime vs PyTorch: max output difference {result.max_diff:.2g})")
