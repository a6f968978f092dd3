"""Recipes: TOML -> frozen dataclasses, ``key=value`` overrides, and validation of every error at once."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import tomllib

from tlhub.errors import UserError, did_you_mean
from tlhub.options import check_value
from tlhub.recipe.overrides import apply_overrides, parse_value  # noqa: F401 (tlhub.recipe.schema's API)

BN_MODES = ("frozen", "eval", "train")


@dataclass(frozen=True)
class ModelCfg:
    backbone: str = field(default="", metadata={"help": "registered backbone name (`tlhub list backbones`)"})
    weights: str = field(default="", metadata={"help": "'imagenet'/'pretrained', 'none' (random init) or a path; "
                                                        "empty: the backbone's default"})
    backbone_options: dict = field(default_factory=dict, metadata={"help": "options of the backbone"})
    head: str = field(default="linear", metadata={"help": "registered head name"})
    head_options: dict = field(default_factory=dict, metadata={"help": "options of the head"})
    task: str = field(default="classification", metadata={"help": "registered task (`tlhub list tasks`)"})
    task_options: dict = field(default_factory=dict, metadata={"help": "options of the task"})


@dataclass(frozen=True)
class AugmentCfg:
    crop_padding: int = field(default=0, metadata={"help": "random crop after padding by this many pixels (0: off)"})
    flip: bool = field(default=False, metadata={"help": "random horizontal flip"})
    rotation: float = field(default=0.0, metadata={"help": "random rotation up to this many degrees"})
    color_jitter: float = field(default=0.0, metadata={"help": "brightness/contrast/saturation jitter strength"})
    swap_pairs: bool = field(default=False, metadata={
        "help": "sentence pairs: train on every pair in both orders (relations that do not depend on the order: "
                "paraphrase, similarity); twice the training examples, none random, so the cache still serves"})


@dataclass(frozen=True)
class TestSourceCfg:
    source: str = field(default="", metadata={"help": "data source of the test split"})
    options: dict = field(default_factory=dict, metadata={"help": "options of that source"})


@dataclass(frozen=True)
class DataCfg:
    source: str = field(default="", metadata={"help": "registered data source (`tlhub list data-sources`)"})
    options: dict = field(default_factory=dict, metadata={"help": "options of the data source"})
    image_size: int = field(default=0, metadata={"help": "image side in pixels (0: the backbone's native size)"})
    preprocess: dict = field(default_factory=dict, metadata={
        "help": "options of the data's modality (`tlhub list modalities`), e.g. an audio plugin's sample rate"})
    val_split: float = field(default=0.2, metadata={"help": "fraction of train held out (stratified) when the "
                                                             "source has no validation split"})
    test_split: float = field(default=0.1, metadata={"help": "fraction of train held out for test when the source "
                                                              "has no test split and [data.test] is unset"})
    split_seed: int = field(default=0, metadata={"help": "seed of the stratified splits"})
    batch_size: int = field(default=32, metadata={"help": "training batch size per process"})
    eval_batch_size: int = field(default=0, metadata={"help": "evaluation batch size (0: 2x batch_size)"})
    workers: int = field(default=0, metadata={"help": "DataLoader worker processes"})
    limit: int = field(default=0, metadata={"help": "use at most this many training examples (0: all)"})
    group_by_length: bool = field(default=True, metadata={
        "help": "text: batch examples of similar length together (less padding; training batches still in random "
                "order, see tlhub/data/batching.py); images ignore it"})
    augment: AugmentCfg = field(default_factory=AugmentCfg, metadata={"help": "augmentation: random for images, "
                                                                                "swap_pairs for sentence pairs"})
    test: TestSourceCfg | None = field(default=None, metadata={"help": "a separate source for the test split"})


@dataclass(frozen=True)
class PhaseCfg:
    name: str = field(default="", metadata={"help": "phase name (default: phaseN)"})
    epochs: int = field(default=1, metadata={"help": "epochs (>= 1)"})
    optimizer: str = field(default="adam", metadata={"help": "registered optimizer: adam, adamw, sgd or a "
                                                              "plugin's (`tlhub list optimizers`)"})
    lr: float = field(default=1e-3, metadata={"help": "base learning rate (> 0); \"auto\": measured by an lr "
                                                      "range test at the start of the phase (sets lr_find)"})
    lr_find: bool = field(default=False, metadata={"help": "run the lr range test at the start of the phase and "
                                                           "train at its suggestion (what lr = \"auto\" sets)"})
    weight_decay: float = field(default=0.0, metadata={"help": "weight decay"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    scheduler: str = field(default="constant", metadata={"help": "schedule after the warm-up: constant, cosine, "
                                                                 "linear or a plugin's (`tlhub list schedulers`)"})
    warmup: float = field(default=0.0, metadata={"help": "warm-up as a fraction of the phase's steps"})
    freeze: str = field(default="frozen", metadata={"help": "freeze policy (`tlhub list freeze-policies`), or "
                                                            "'auto': searched at the start of the run (docs/freeze.md)"})
    freeze_options: dict = field(default_factory=dict, metadata={"help": "options of the freeze policy"})
    bn: str = field(default="eval", metadata={"help": "BatchNorm mode of trainable groups: frozen, eval or train "
                                                      "(frozen groups are always 'frozen')", "choices": BN_MODES})
    bn_groups: dict = field(default_factory=dict, metadata={"help": "per-group BatchNorm mode, {group = mode}"})
    lr_mult: dict = field(default_factory=dict, metadata={"help": "per-group learning-rate multipliers, "
                                                                  "{group = factor}; 'head' names the head"})
    layer_decay: float = field(default=1.0, metadata={"help": "layer-wise lr decay: group i from the top gets "
                                                              "lr * layer_decay**i (1.0: off)"})
    epoch_steps: int = field(default=0, metadata={"help": "train at most this many batches per epoch, a fresh "
                                                          "shuffle each epoch (0: the whole split); the search's "
                                                          "trials on large data use it"})
    early_stop: int = field(default=0, metadata={"help": "stop the phase after this many epochs without a better "
                                                         "validation score (0: off)"})
    restore_best: bool = field(default=False, metadata={"help": "end the phase with the weights of its best "
                                                                "validation epoch"})
    auto_budget: float = field(default=4.0, metadata={"help": "freeze = 'auto': the whole auto phase (head, search, "
                                                              "the winner's training) may cost this many times the "
                                                              "default plan"})
    auto_minutes: float = field(default=0.0, metadata={"help": "freeze = 'auto': also cap the auto phase at this many "
                                                               "minutes (0: no cap)"})
    auto_trials: str = field(default="auto", metadata={
        "help": "freeze = 'auto' under several processes: 'side_by_side' (each process trains trials of its own), "
                "'data_parallel' (every trial on all processes) or 'auto' (side by side where each process has a "
                "device of its own, e.g. a GPU; data-parallel on CPU processes, which share the cores)",
        "choices": ("auto", "side_by_side", "data_parallel")})


@dataclass(frozen=True)
class TrainCfg:
    seed: int = field(default=0, metadata={"help": "random seed"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16, bf16 or auto (bf16 on a CPU with AMX / "
                                                                  "AVX-512 bf16 unless the backbone has depthwise "
                                                                  "convolutions, else fp32)",
                                                          "choices": ("no", "fp16", "bf16", "auto")})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads per process (0: cores / processes)"})
    log_with: list = field(default_factory=list, metadata={"help": "Accelerate trackers, e.g. ['tensorboard']"})
    checkpoint_steps: int = field(default=0, metadata={"help": "also checkpoint every N optimizer steps "
                                                               "(0: only at the end of each epoch)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "how many newest checkpoints to keep"})
    channels_last: bool = field(default=True, metadata={"help": "image models: convolutions in channels-last memory "
                                                                 "format (faster on CPUs); false: PyTorch's default"})
    deterministic: bool = field(default=True, metadata={"help": "on a GPU: deterministic cuDNN/cuBLAS kernels, so "
                                                               "the same seed trains the same weights and a resumed "
                                                               "run equals an uninterrupted one; false: faster"})
    cache: bool = field(default=True, metadata={"help": "run the frozen leading groups once per phase and train "
                                                        "the rest on the stored tensors"})
    cache_dtype: str = field(default="float32", metadata={"help": "storage type of cached tensors",
                                                          "choices": ("float32", "float16")})
    cache_memory_mb: float = field(default=2048.0, metadata={"help": "cache kept in memory up to this size; "
                                                                     "beyond it, memory-mapped in the run directory"})


@dataclass(frozen=True)
class EvalCfg:
    metrics: list = field(default_factory=list,
                          metadata={"help": "the test scores; empty: the task's own, named when the recipe is "
                                            "resolved (classification: accuracy, f1, "
                                            "precision, recall; regression: pearson, spearman, mae, rmse; multilabel: "
                                            "macro_f1, micro_f1, mean_average_precision, exact_match). Classification "
                                            "takes any metric name (tlhub list metrics: registered by plugins) or an "
                                            "evaluate metric in its cache, never a path; other tasks a subset of "
                                            "their own"})
    each_phase: bool = field(default=False, metadata={"help": "also score the test split after every earlier phase "
                                                               "(metrics.json: after_phase)"})


@dataclass(frozen=True)
class OutputCfg:
    dir: str = field(default="", metadata={"help": "run directory (relative to the working directory); "
                                                   "empty: runs/<recipe>-<time>"})


@dataclass(frozen=True)
class Recipe:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    phases: tuple[PhaseCfg, ...] = ()
    train: TrainCfg = field(default_factory=TrainCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    output: OutputCfg = field(default_factory=OutputCfg)
    path: str = ""       # where the recipe came from (not a TOML key)
    base_dir: str = "."  # folder recipe-relative paths resolve against (not a TOML key)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path"), d.pop("base_dir")
        if d["data"]["test"] is None:
            d["data"].pop("test")
        return d

    @property
    def stem(self) -> str:
        return Path(self.path).stem if self.path else "recipe"


SECTIONS = {"model": ModelCfg, "data": DataCfg, "phases": PhaseCfg, "train": TrainCfg, "eval": EvalCfg,
            "output": OutputCfg}


# ---------------------------------------------------------------- parsing

def load_toml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such recipe file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a BOM (Windows editors) is not TOML
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text: {exc}") from None


def _build(cls: type, raw: Any, path: str, errors: list[str]) -> Any:
    """Build dataclass ``cls`` from a table, collecting type and unknown-key errors."""
    if not isinstance(raw, dict):
        errors.append(f"{path}: expected a table, got {raw!r}")
        return cls()
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.name not in ("path", "base_dir")}
    kwargs = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            errors.append(f"{where}: unknown key{did_you_mean(key, known)}")
            continue
        typ = hints[key]
        if get_origin(typ) is not None and type(None) in get_args(typ):  # Optional[X]
            typ = next(a for a in get_args(typ) if a is not type(None))
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _build(typ, value, where, errors)
            continue
        base = get_origin(typ) or typ
        errs = check_value(where, value, base, known[key].metadata.get("choices"))
        if errs:
            errors += errs
            continue
        kwargs[key] = float(value) if base is float else value
    return cls(**kwargs)


def parse_recipe(raw: dict, path: str = "", base_dir: str | Path = ".", errors: list[str] | None = None) -> Recipe:
    """Turn a TOML table into a ``Recipe``; raise ``UserError`` listing every problem found.

    With an ``errors`` list, problems are appended to it instead and a best-effort recipe returned.
    """
    collect = errors is not None
    errors = errors if collect else []
    if not isinstance(raw, dict):
        raise UserError("recipe: expected a table")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SECTIONS:
            errors.append(f"{key}: unknown section{did_you_mean(key, SECTIONS)}")
            continue
        if key == "phases":
            if not isinstance(value, list):
                errors.append("phases: expected an array of tables ([[phases]])")
                continue
            phases = []
            for i, table in enumerate(value):
                if isinstance(table, dict) and table.get("lr") == "auto":  # measured at the phase's start
                    table = {k: v for k, v in table.items() if k != "lr"} | {"lr_find": True}
                ph = _build(PhaseCfg, table, f"phases.{i}", errors)
                phases.append(ph if ph.name else dataclasses.replace(ph, name=f"phase{i + 1}"))
            kwargs["phases"] = tuple(phases)
        else:
            kwargs[key] = _build(SECTIONS[key], value, key, errors)
    recipe = Recipe(**kwargs, path=str(path), base_dir=str(base_dir))
    errors += _check_values(recipe)
    if errors and not collect:
        raise UserError(errors=errors)
    return recipe


def _check_values(r: Recipe) -> list[str]:
    e = []
    if not r.model.backbone:
        e.append("model.backbone: required (a registered backbone name)")
    if not r.model.head:
        e.append("model.head: required (a registered head name)")
    if not r.data.source:
        e.append("data.source: required (a registered data source name)")
    if not r.phases:
        e.append("phases: at least one [[phases]] table is required")
    names = [p.name for p in r.phases]
    for i, p in enumerate(r.phases):
        where = f"phases.{i}"
        if p.epochs < 1:
            e.append(f"{where}.epochs: must be >= 1, got {p.epochs}")
        if p.lr <= 0:
            e.append(f"{where}.lr: must be > 0, got {p.lr}")
        if p.weight_decay < 0:
            e.append(f"{where}.weight_decay: must be >= 0, got {p.weight_decay}")
        if not 0 <= p.warmup < 1:
            e.append(f"{where}.warmup: must be in [0, 1), got {p.warmup}")
        if not 0 < p.layer_decay <= 1:
            e.append(f"{where}.layer_decay: must be in (0, 1], got {p.layer_decay}")
        for g, mode in p.bn_groups.items():
            if mode not in BN_MODES:
                e.append(f"{where}.bn_groups.{g}: must be one of {', '.join(BN_MODES)}, got {mode!r}")
        for g, mult in p.lr_mult.items():
            if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult < 0:
                e.append(f"{where}.lr_mult.{g}: must be a number >= 0, got {mult!r}")
        if p.epoch_steps < 0:
            e.append(f"{where}.epoch_steps: must be >= 0 (batches per epoch; 0: the whole split), got {p.epoch_steps}")
        if p.early_stop < 0:
            e.append(f"{where}.early_stop: must be >= 0 (epochs of patience; 0: off), got {p.early_stop}")
        if p.auto_budget <= 0:
            e.append(f"{where}.auto_budget: must be > 0 (times the cost of the default plan), got {p.auto_budget}")
        if p.auto_minutes < 0:
            e.append(f"{where}.auto_minutes: must be >= 0 (0: no cap), got {p.auto_minutes}")
        if names.count(p.name) > 1:
            e.append(f"{where}.name: duplicate phase name {p.name!r}")
    autos = [i for i, p in enumerate(r.phases) if p.freeze == "auto"]
    if len(autos) > 1:
        e.append(f"phases.{autos[1]}.freeze: only one phase may be 'auto' (phase {autos[0]} already is); "
                 f"the search replaces it by a head phase and the winning plan")
    d = r.data
    if not 0 <= d.val_split < 1:
        e.append(f"data.val_split: must be in [0, 1), got {d.val_split}")
    if not 0 <= d.test_split < 1:
        e.append(f"data.test_split: must be in [0, 1), got {d.test_split}")
    if d.val_split + d.test_split >= 1:
        e.append("data.val_split + data.test_split: must leave some training data")
    for key in ("batch_size",):
        if getattr(d, key) < 1:
            e.append(f"data.{key}: must be >= 1, got {getattr(d, key)}")
    for key in ("eval_batch_size", "workers", "limit", "image_size"):
        if getattr(d, key) < 0:
            e.append(f"data.{key}: must be >= 0, got {getattr(d, key)}")
    for key in ("crop_padding", "rotation", "color_jitter"):  # negative would silently mean "off"
        if getattr(d.augment, key) < 0:
            e.append(f"data.augment.{key}: must be >= 0 (0: off), got {getattr(d.augment, key)}")
    if d.test is not None and not d.test.source:
        e.append("data.test.source: required when [data.test] is given")
    for key, seed in (("train.seed", r.train.seed), ("data.split_seed", d.split_seed)):
        if not 0 <= seed < 2**32:  # what numpy's and torch's seeding accept
            e.append(f"{key}: must be in [0, 2**32), got {seed}")
    if r.train.grad_accum < 1:
        e.append(f"train.grad_accum: must be >= 1, got {r.train.grad_accum}")
    if r.train.checkpoint_steps < 0:
        e.append(f"train.checkpoint_steps: must be >= 0, got {r.train.checkpoint_steps}")
    if r.train.keep_checkpoints < 1:
        e.append(f"train.keep_checkpoints: must be >= 1, got {r.train.keep_checkpoints}")
    if r.train.cache_memory_mb < 0:
        e.append(f"train.cache_memory_mb: must be >= 0, got {r.train.cache_memory_mb}")
    if r.train.threads < 0:
        e.append(f"train.threads: must be >= 0, got {r.train.threads}")
    if not all(isinstance(m, str) for m in r.eval.metrics):
        e.append("eval.metrics: must be a list of metric names")
    if not all(isinstance(m, str) for m in r.train.log_with):
        e.append("train.log_with: must be a list of tracker names")
    return e


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and parse a recipe file (component names are checked by ``validate``)."""
    raw = load_toml(path)
    raw = apply_overrides(raw, list(overrides))
    return parse_recipe(raw, path=str(path), base_dir=Path(path).resolve().parent)


def to_toml(recipe: Recipe) -> str:
    import tomli_w
    return tomli_w.dumps(recipe.to_dict())
