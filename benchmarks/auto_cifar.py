"""freeze = "auto" against hand-written phases on the CIFAR-10 JPEG subset (../shared/data/cifar10-jpg).

Three runs of EfficientNet-Lite0 at 64 px, one after another in this process, on the same splits
(image-folder train: 4,000 train / 1,000 validation, stratified; the 5,000 test images as [data.test]):

  copied  recipes/mnist5k_lite0.toml as it is, [data] pointed at the folder (what a new user tries)
  auto    the same backbone and data, one phase: freeze = "auto" (auto_budget 2.0)
  replay  the recipe `tlhub advise --write` would write from the auto run: its chosen phases, no search

    nice -n 10 .venv/bin/python benchmarks/auto_cifar.py   # long: on the shared 2-core CPU at load ~9 the
                                                           # copied run alone did not finish in 30 minutes
Writes benchmarks/out/auto_cifar.json and prints the rows for benchmarks/RESULTS.md.
Skips with a message when the data folder is absent.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data" / "cifar10-jpg"
OUT = HERE / "out"


def data_overrides() -> list[str]:
    return ["data.source=image-folder", f"data.options={{ path = '{DATA / 'train'}' }}", "data.val_split=0.2",
            "data.test_split=0.0", "data.test.source=image-folder",
            f"data.test.options={{ path = '{DATA / 'test'}' }}"]


def one(name: str, recipe: Path, overrides: list[str]) -> dict:
    import tlhub
    out = OUT / f"auto_cifar-{name}"
    t0 = time.time()
    result = tlhub.run(recipe, data_overrides() + overrides + [f"output.dir='{out}'"], overwrite=True, quiet=True)
    row = {"name": name, "accuracy": round(result.metrics["accuracy"], 4), "seconds": round(time.time() - t0, 1),
           "phases": [f"{r['phase']}" for r in result.history], "run_dir": str(out)}
    search = out / "auto_search.json"
    if search.is_file():
        data = json.loads(search.read_text())
        row.update(winner=data["winner"], chosen=data["phases"], search_seconds=data["seconds"],
                   trials=[(t["plan"], t["epochs"], t["val_accuracy"], t["status"]) for t in data["trials"]])
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent")
        return 0
    OUT.mkdir(exist_ok=True)
    base = REPO / "recipes" / "mnist5k_lite0.toml"
    rows = [one("copied", base, [])]
    auto = one("auto", base, ["phases=[{ name = 'auto', freeze = 'auto', lr = 3e-3 }]"])
    rows.append(auto)
    if auto.get("chosen"):
        replay = OUT / "auto_cifar-replay.toml"
        replay.write_text(_replay_text(base, auto["chosen"]))
        rows.append(one("replay", replay, []))
    (OUT / "auto_cifar.json").write_text(json.dumps(rows, indent=2))
    print("\n| run | test accuracy | wall s | phases |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['accuracy']:.4f} | {r['seconds']:.0f} | {', '.join(dict.fromkeys(r['phases']))} |")
    return 0


def _replay_text(base: Path, phases: list[dict]) -> str:
    """The base recipe with its phases replaced by ``phases`` (what `tlhub advise --write` writes)."""
    import tomli_w
    import tomllib

    from tlhub.auto.writing import phases_toml
    raw = tomllib.loads(base.read_text())
    raw.pop("phases")
    return tomli_w.dumps(raw) + "\n" + phases_toml(phases)


if __name__ == "__main__":
    sys.exit(main())
