"""Issue 30, part B: inputs read as the user meant them, one input check for every predict path, a model
config checked against its schema, and one message (exit 2) instead of a traceback for damaged files and
unwritable outputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_hostile import invoke, one_line_error

import tlhub
from tlhub.errors import UserError
from tlhub.interfaces import DataContext
from tlhub.options import resolve_options

FAST = ["phases.0.epochs=1", "phases.1.epochs=1"]


def load_source(name, base: Path, **options):
    from tlhub.plugins import get_registry
    spec = get_registry().get("data-sources", name)
    opts, errors = resolve_options("data.options", options, spec.options)
    assert not errors, errors
    # table sources give raw labels; the recipe's task (classification here) reads them, as make_splits does
    data = spec.load(opts, DataContext(Path(base), seed=0, log=lambda msg: None))
    return get_registry().task("classification").encode(data, name)


def png(path: Path, value: int, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def image_tree(root: Path, splits: dict[str, int], classes=("cat", "dog")) -> Path:
    for split, n in splits.items():
        for c in classes:
            for i in range(n):
                png(root / split / c / f"{i}.png", 20 * i + 5)
    return root


# ---------------------------------------------------------------- finding 6: split folders by any name

@pytest.mark.parametrize("names", [("Train", "Test"), ("training", "testing"), ("TRAIN", "Valid", "TEST"),
                                   ("train", "dev", "test"), ("Training", "Validation")])
def test_split_folders_are_recognised_in_any_case(tmp_path, names):
    root = image_tree(tmp_path / "data", {n: 2 + i for i, n in enumerate(names)})
    src = load_source("image-folder", tmp_path, path="data")
    assert src.classes == ["cat", "dog"]  # main: the split folders were the classes ['Test', 'Train']
    counts = {n.lower()[:3]: len(getattr(src, {"tra": "train", "tes": "test"}.get(n.lower()[:3], "val")))
              for n in names}
    assert counts == {n.lower()[:3]: 2 * (2 + i) for i, n in enumerate(names)}
    assert (src.val is not None) == any(n.lower()[:3] in ("val", "dev") for n in names)
    assert root.is_dir()


@pytest.mark.parametrize("layout, needle", [
    ({"Val": 1, "Test": 1}, "no training folder"),            # main: classes ['Test', 'Val']
    ({"train": 2, "dev": 1, "validation": 1}, "more than one folder for a split"),  # main: dev ignored
])
def test_split_like_top_level_is_never_read_as_classes(tmp_path, layout, needle):
    image_tree(tmp_path / "data", layout)
    with pytest.raises(UserError, match=needle):
        load_source("image-folder", tmp_path, path="data")


def test_split_folders_beside_class_folders_are_an_error(tmp_path):
    image_tree(tmp_path / "data", {"train": 2, "test": 1})
    png(tmp_path / "data" / "bird" / "0.png", 1)  # main: silently ignored
    with pytest.raises(UserError, match=r"mixes split folders \(train, test\) with other folders \(bird\)"):
        load_source("image-folder", tmp_path, path="data")


def test_class_folders_alone_are_still_classes(tmp_path):
    image_tree(tmp_path, {"pets": 2}, classes=("Trainer", "tester"))  # names that only start like splits
    src = load_source("image-folder", tmp_path, path="pets")
    assert src.classes == ["Trainer", "tester"] and src.val is None


# ---------------------------------------------------------------- finding 7: TSV/CSV quoting, labels, headers

def test_tsv_quoted_field_with_a_tab_is_one_field(tmp_path):
    pytest.importorskip("tlhub_text")
    (tmp_path / "t.tsv").write_text('text\tlabel\n"great\tmovie"\tpos\nawful\tneg\n"say ""hi"""\tpos\n',
                                    encoding="utf-8")
    data = load_source("tsv", tmp_path, path="t.tsv")
    assert data.classes == ["neg", "pos"]  # main: a class 'movie"'
    assert list(data.train.items) == ["great\tmovie", "awful", 'say "hi"'] and list(data.train.labels) == [1, 0, 1]


def test_tsv_quotes_that_are_text_stay_text(tmp_path):
    pytest.importorskip("tlhub_text")  # GLUE style: a quote is a character, never a delimiter
    (tmp_path / "t.tsv").write_text('sentence\tlabel\n"the " best\t1\nit \'s "bad\t0\n', encoding="utf-8")
    data = load_source("tsv", tmp_path, path="t.tsv", text_column="sentence")
    assert list(data.train.items) == ['"the " best', "it 's \"bad"]


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_numeric_labels_written_two_ways_are_one_class(tmp_path, kind):
    pytest.importorskip("tlhub_text")
    sep = "," if kind == "csv" else "\t"
    rows = [("good", "1"), ("bad", "0"), ("fine", "1.0"), ("poor", "0.0"), ("ok", "1.00")]
    (tmp_path / f"t.{kind}").write_text(f"text{sep}label\n" + "".join(f"{t}{sep}{lab}\n" for t, lab in rows))
    data = load_source(kind, tmp_path, path=f"t.{kind}")
    assert data.classes == ["0", "1"]  # main: ['0', '1', '0.0', '1.0', '1.00'] -- as JSONL already merged them
    assert list(data.train.labels) == [1, 0, 1, 0, 1]


@pytest.mark.parametrize("kind", ["csv", "tsv"])
def test_a_repeated_header_row_is_an_error(tmp_path, kind):
    pytest.importorskip("tlhub_text")
    sep = "," if kind == "csv" else "\t"
    part = f"text{sep}label\ngood{sep}pos\nbad{sep}neg\n"
    (tmp_path / f"t.{kind}").write_text(part + part)  # two files joined with cat
    with pytest.raises(UserError, match=f"t.{kind}: line 4 repeats the header row"):
        load_source(kind, tmp_path, path=f"t.{kind}")  # main: a class 'label'


def test_a_recipe_with_a_bom_reads_fine(tmp_path, tiny_recipe_text):
    path = tmp_path / "r.toml"
    path.write_bytes(b"\xef\xbb\xbf" + tiny_recipe_text.encode("utf-8"))
    res = invoke("validate", path)
    assert res.exit_code == 0, res.output  # main: exit 2, malformed TOML


# ---------------------------------------------------------------- findings 9 and item 5: one input check

@pytest.fixture(scope="module")
def image_predictors(trained_image_model, tmp_path_factory):
    """(PyTorch Predictor, OnnxPredictor) of one tiny image model."""
    pytest.importorskip("onnxruntime")
    from tlhub.export.onnx import export_onnx
    from tlhub.use.onnx import OnnxPredictor
    out = tmp_path_factory.mktemp("onnx-image")
    export_onnx(trained_image_model, out)
    return tlhub.load(trained_image_model), OnnxPredictor(out / "model.onnx")


@pytest.fixture(scope="module")
def text_predictors(tmp_path_factory):
    pytest.importorskip("tlhub_text")
    pytest.importorskip("onnxruntime")
    from tinyruns import train_tiny_text

    from tlhub.export.onnx import export_onnx
    from tlhub.use.onnx import OnnxPredictor
    root = tmp_path_factory.mktemp("text")
    run = train_tiny_text(root)
    export_onnx(run, root / "onnx")
    return tlhub.load(run), OnnxPredictor(root / "onnx" / "model.onnx")


def refusals(predictors, inputs) -> list[str]:
    """The UserError message of each predictor for ``inputs`` (each must refuse)."""
    out = []
    for p in predictors:
        with pytest.raises(UserError) as exc:
            p.predict(inputs)
        out.append(str(exc.value))
    return out


@pytest.mark.parametrize("inputs, needle", [
    ("", "empty or blank text"), ("  \t ", "empty or blank text"), (["fine", "\n"], "input 2: empty or blank"),
    ("caf\udce9", "not valid UTF-8"),  # an undecodable byte, as Python keeps it from argv
    ([b"bytes"], "takes text (strings); got bytes"), (b"raw", "got bytes"), (3, "got int"),
])
def test_text_refusals_are_the_same_on_every_path(text_predictors, inputs, needle):
    torch_msg, onnx_msg = refusals(text_predictors, inputs)  # main: ONNX labelled blank text, crashed on the rest
    assert torch_msg == onnx_msg and needle in torch_msg


def test_decompression_bombs_are_refused_on_every_path(image_predictors, tmp_path, monkeypatch):
    png(tmp_path / "bomb.png", 7, size=40)  # 1600 pixels: past twice the limit, where Pillow raises
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    torch_msg, onnx_msg = refusals(image_predictors, str(tmp_path / "bomb.png"))  # main: ONNX crashed
    assert torch_msg == onnx_msg and "decompression bomb" in torch_msg


@pytest.mark.parametrize("shape, needle", [
    ((2, 2, 2, 2, 2), "2, 3 or 4 dimensions"), ((16,), "2, 3 or 4 dimensions"),
    ((16, 16, 5), "1, 3 or 4 channels"), ((0, 16, 3), "1, 3 or 4 channels"), ((2, 0, 16, 3), "1, 3 or 4 channels"),
])
def test_wrong_shapes_are_refused_on_every_path(image_predictors, shape, needle):
    torch_msg, onnx_msg = refusals(image_predictors, np.zeros(shape, np.uint8))
    assert torch_msg == onnx_msg and needle in torch_msg


def test_one_image_array_is_one_prediction_on_every_path(image_predictors):
    arr = np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)
    torch_p, onnx_p = image_predictors
    got = [torch_p.predict(arr), onnx_p.predict(arr)]
    assert [len(g) for g in got] == [1, 1]  # main: ONNX made 16 predictions, one per row of the array
    assert got[0][0].label == got[1][0].label
    assert [len(p.predict(np.stack([arr, arr]))) for p in image_predictors] == [2, 2]


def test_blank_text_through_the_onnx_cli(text_predictors):
    onnx_dir = text_predictors[1].path.parent
    one_line_error(invoke("predict", onnx_dir, "   "), "empty or blank text")  # main: exit 0 with a label


# ---------------------------------------------------------------- finding 10: config.json has a schema

@pytest.fixture
def model_copy(trained_image_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(trained_image_model / "model", folder)
    png(tmp_path / "x.png", 9, size=16)
    return folder


@pytest.mark.parametrize("edit, needle", [
    (lambda c: None, "expected a JSON object (a tlhub model config), got NoneType"),
    (lambda c: 5, "expected a JSON object (a tlhub model config), got int"),
    (lambda c: [c], "got list"),
    (lambda c: {**c, "classes": "abcd"}, "classes must be a list of class names, got str"),
    (lambda c: {**c, "classes": 3}, "classes must be a list of class names, got int"),
    (lambda c: {**c, "classes": ["0", "0", "1", "2"]}, "classes must be distinct, got '0' more than once"),
    (lambda c: {**c, "classes": ["0", "", "1", "2"]}, "classes must be non-empty names"),
    (lambda c: {**c, "classes": ["0", None, "1", "2"]}, "classes must be non-empty names"),
    (lambda c: {**c, "backbone_options": [1]}, "backbone_options must be a table (JSON object) or null, got list"),
    (lambda c: {**c, "head_options": "x"}, "head_options must be a table"),
    (lambda c: {**c, "backbone": 7}, "backbone must be a registered name"),
    (lambda c: {**c, "channels_last": "yes"}, "channels_last must be true or false"),
    (lambda c: {**c, "preprocessing": {**c["preprocessing"], "std": [0, 1, 1]}}, "std must not be 0"),
])
def test_config_json_is_checked_against_its_schema(model_copy, edit, needle):
    path = model_copy / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    res = invoke("predict", model_copy, model_copy.parent / "x.png")
    one_line_error(res, f"{path}: ", needle)
    assert res.output.count("error:") == 1


def test_config_problems_are_listed_together():
    from tlhub.use.modelconfig import config_problems
    problems = config_problems({"backbone": "", "head": "mlp", "classes": "ab", "preprocessing": {"modality": "x"},
                                "backbone_options": [1]})
    assert len(problems) == 4 and "modality 'x' is not installed (installed: " in problems[-1]


def test_onnx_metadata_is_checked_too(image_predictors, tmp_path):
    import onnx

    from tlhub.use.onnx import OnnxPredictor
    proto = onnx.load(str(image_predictors[1].path))
    for entry in proto.metadata_props:
        if entry.key == "tlhub.classes":
            entry.value = json.dumps(["a", "a", "b", "c"])
    onnx.save(proto, str(tmp_path / "model.onnx"))
    with pytest.raises(UserError, match="tlhub metadata: classes must be distinct"):
        OnnxPredictor(tmp_path / "model.onnx")


# ---------------------------------------------------------------- tracebacks that became one message

def test_unwritable_outputs_are_one_message(trained_image_model, tmp_path, tiny_recipe):
    run = trained_image_model
    one_line_error(invoke("export", run, "-o", "/proc/x"), "--output: cannot write in /proc")
    one_line_error(invoke("eval", run, "--data", "synthetic", "--out", "/proc/x"), "--out: cannot write in /proc")
    one_line_error(invoke("compare", run, run, "--out", "/proc"), "--out: cannot write in /proc")
    res = invoke("advise", tiny_recipe, "--write", "/proc/x/best.toml")
    one_line_error(res, "--write: cannot write in /proc")
    assert "trial" not in res.output  # refused before the search, not after it
    assert not (run / "onnx").exists()


def test_report_on_a_read_only_run_is_one_message(trained_image_model, tmp_path, monkeypatch):
    import errno

    from tlhub.reporting import pictures
    run = tmp_path / "run"
    shutil.copytree(trained_image_model, run)

    def read_only(fig, path):  # what a read-only folder answers (tests run as root: chmod would not stop it)
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))
    monkeypatch.setattr(pictures, "_save", read_only)
    one_line_error(invoke("report", run), "confusion_matrix.png: Read-only file system")


@pytest.mark.parametrize("name, damage, codes", [  # codes: the exit statuses of report and of compare
    ("metrics.json", lambda b: b[: len(b) // 2], (2, 2)), ("history.jsonl", lambda b: b[: len(b) // 2 + 3], (2, 2)),
    ("metrics.json", lambda b: b"[]", (2, 2)), ("plan.json", lambda b: b"[1]", (2, 2)),
    ("samples.safetensors", lambda b: b[: len(b) // 2], (2, 0)),  # compare does not read the samples
    ("timings.json", lambda b: b'"x"', (2, 2)), ("history.jsonl", lambda b: b"[1]\n", (2, 2)),
    ("metrics.json", lambda b: b"\xff\xfe", (2, 2)), ("model/config.json", lambda b: b"3", (2, 2)),
    ("samples.json", lambda b: b'{"items": [1, 2]}', (2, 0)),
    ("metrics.json", lambda b: b'{"confusion_matrix": 5, "classes": 3, "accuracy": "x"}', (2, 2)),
    ("timings.json", lambda b: b'{"phases": [{"seconds": "slow"}]}', (2, 2)),
])
def test_report_and_compare_on_damaged_run_files(trained_image_model, tmp_path, name, damage, codes):
    run = tmp_path / "run"
    shutil.copytree(trained_image_model, run)
    (run / name).write_bytes(damage((run / name).read_bytes()))
    for res, code in zip((invoke("report", run), invoke("compare", run, trained_image_model, "--out", tmp_path)),
                         codes):
        assert res.exit_code == code and "Traceback" not in res.output, res.output  # main: tracebacks
        if code == 2:
            assert str(run) in res.output and res.output.count("error:") == 1


@pytest.mark.parametrize("damage", ["weights", "hidden_size"])
def test_damaged_hugging_face_folder_is_one_message(tmp_path, damage):
    pytest.importorskip("tlhub_text")
    from tlhub_text.testing import save_tiny_model
    folder = save_tiny_model(tmp_path / "bert")
    if damage == "weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "hidden_size": "x"}))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": f"good {i}", "label": i % 2}) + "\n"
                                              for i in range(20)))
    (tmp_path / "r.toml").write_text(f"""[model]
backbone = "hf"
backbone_options = {{ model = "{folder.as_posix()}", max_length = 8 }}
[data]
source = "jsonl"
options = {{ path = "d.jsonl" }}
[[phases]]
epochs = 1
lr = 0.01
freeze = "frozen"
[output]
dir = "{(tmp_path / 'run').as_posix()}"
""")
    one_line_error(invoke("run", tmp_path / "r.toml", "--quiet"), "is not a loadable Hugging Face model folder")


def test_a_metric_returning_numpy_floats_keeps_the_trained_model(tiny_recipe, tmp_path, monkeypatch):
    import tlhub.metrics as metrics

    class NumpyMetric:  # what a custom evaluate metric may return
        def compute(self, predictions, references, **kwargs):
            right = np.mean(np.asarray(predictions) == np.asarray(references))
            return {"accuracy": np.float32(right), "per_class": np.array([1, 2])}
    monkeypatch.setitem(metrics._LOADED, "accuracy", NumpyMetric())
    result = tlhub.run(tiny_recipe, FAST, quiet=True)  # main: TypeError after training, model/ never written
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert isinstance(saved["accuracy"], float) and saved["per_class"] == [1, 2]
    assert (result.run_dir / "model" / "model.safetensors").is_file()
    assert tlhub.load(result.run_dir).classes


def test_a_phase_named_with_a_slash_can_find_its_lr(tiny_recipe):
    result = tlhub.run(tiny_recipe, [*FAST, 'phases.1.name="a/b"', 'phases.1.lr="auto"', "phases.1.warmup=0"],
                       quiet=True)  # main: FileNotFoundError for lr_find-a/b.png
    assert (result.run_dir / "lr_find-a_b.png").is_file()
    assert not (result.run_dir / "lr_find-a").exists()
