"""``tlhub predict``: labels for images or texts from a trained model."""
from __future__ import annotations

import json

import click

from tlhub.cli.base import user_errors
from tlhub.cli.options import DEVICE_HELP, cell
from tlhub.errors import UserError


@click.command()
@click.argument("model", type=click.Path())
@click.argument("inputs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON list: input, label, prob and every class's probs.")
@click.option("--top", default=1, show_default=True, type=click.IntRange(min=1),
              help="Classes shown per input in the table.")
@click.option("--batch-size", default=64, show_default=True, help="Inputs per forward pass.")
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@user_errors
def predict(model, inputs, as_json, top, batch_size, device):
    """Predict with a trained MODEL (a run directory or its model/ folder, or an exported model.onnx or
    the folder holding it: then ONNX Runtime runs it, and image models need no PyTorch).

    INPUTS: what the model's modality reads: image files or folders of images for an image model, texts
    for a text model (a sentence pair: both in one argument, separated by a tab; a plugin's modality says
    its own, e.g. .wav files); `-` reads one input per line from stdin (paths, texts, or pairs as TSV).
    """
    # local: loads when the command runs, so that `tlhub --help` stays fast
    from tlhub.use.onnx import OnnxPredictor, find_onnx

    onnx_file = find_onnx(model)
    if onnx_file is not None:
        if device != "cpu":
            click.echo(f"note: {onnx_file} runs on ONNX Runtime's CPU provider; --device {device} is ignored",
                       err=True)
        predictor = OnnxPredictor(onnx_file)
    else:
        # local: loads when the command runs, so that `tlhub --help` stays fast
        from tlhub.use.load import load
        predictor = load(model, device=device)
    items: list[str] = []
    for arg in inputs:
        items += read_stdin() if arg == "-" else [arg]
    skipped: list[str] = []
    items = predictor.modality_impl.expand(items, skipped)  # e.g. a folder -> its files
    if skipped:  # as training does: a folder's unreadable file is skipped, not fatal
        click.echo(f"warning: skipped {len(skipped)} file(s) that are not readable {predictor.modality_impl.noun}: "
                   + "; ".join(skipped), err=True)
    if not items:
        raise UserError("no inputs to predict (" + (f"no readable {predictor.modality_impl.noun}" if inputs != ("-",)
                                                    else "stdin was empty") + ")")
    preds = predictor.predict(items, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps([{"input": i, **p.to_dict()} for i, p in zip(items, preds)], indent=2))
        return
    shown = [cell(" | ".join(i) if isinstance(i, tuple) else i, 60) for i in items]  # a pair: both sentences
    width = max(len("input"), *(len(s) for s in shown))
    if preds[0].values is not None or preds[0].labels is not None:  # numbers, or the labels over their thresholds
        values = preds[0].values
        # one target: its name heads the column ("similarity"); several are named in each row
        head = "labels" if values is None else next(iter(values)) if len(values) == 1 else "values"
        click.echo(f"{'input':<{width}}  {head}")
        for s, p in zip(shown, preds):
            click.echo(f"{s:<{width}}  {p}")
        return
    lw = max(len("label"), *(len(c) for c in predictor.classes))
    click.echo(f"{'input':<{width}}  {'label':<{lw}}  {'prob':>6}")
    for s, p in zip(shown, preds):
        # the decided class first (a tuned threshold may pick one less probable), then the others by probability
        ranked = ([(p.label, p.probs[p.label])] + sorted(((c, v) for c, v in p.probs.items() if c != p.label),
                                                         key=lambda kv: -kv[1]))[:top]
        click.echo(f"{s:<{width}}  " + "  ".join(f"{c:<{lw}}  {v:>6.4f}" for c, v in ranked))


def read_stdin() -> list[str]:
    """One input per line of stdin, which must be UTF-8; blank lines are skipped, and counted aloud."""
    lines, blank = [], 0
    for n, raw in enumerate(click.get_binary_stream("stdin"), 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise UserError(f"stdin line {n}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if line.strip():
            lines.append(line)
        else:
            blank += 1
    if blank:
        click.echo(f"note: skipped {blank} blank line(s) of stdin", err=True)
    return lines
