"""Text data sources of tlhub-text: text-files, csv, tsv, jsonl and hf (save_to_disk), plus rt-polarity."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tlhub_text")

from tlhub.errors import UserError  # noqa: E402
from tlhub.interfaces import DataContext  # noqa: E402
from tlhub.options import resolve_options  # noqa: E402
from tlhub.plugins import get_registry  # noqa: E402

RT = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity"
needs_rt = pytest.mark.skipif(not (RT / "rt-polarity.pos").is_file(),
                              reason=f"rt-polarity data not found at {RT} (it lives beside the repo, not in it)")


def load(source: str, tmp_path: Path, log=None, **options):
    spec = get_registry().get("data-sources", source)
    opts, errors = resolve_options("data.options", options, spec.options)
    if errors:
        raise UserError(errors=errors)
    # the table sources give raw labels; the recipe's task (classification here) reads them, as make_splits does
    data = spec.load(opts, DataContext(tmp_path, 0, log=log or (lambda m: None)))
    return get_registry().task("classification").encode(data, source)


# ------------------------------------------------------------------ text-files

def test_text_files_table_and_list(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "reviews.pos").write_text("good film\nloved it\n", encoding="utf-8")
    (tmp_path / "d" / "reviews.neg").write_text("awful\r\nboring\r\nbad\r\n", encoding="utf-8")  # CRLF
    data = load("text-files", tmp_path, files={"positive": "d/reviews.pos", "negative": "d/reviews.neg"})
    assert data.classes == ["negative", "positive"]
    assert list(data.train.items) == ["awful", "boring", "bad", "good film", "loved it"]
    assert list(data.train.labels) == [0, 0, 0, 1, 1]
    assert data.val is None and data.test is None  # carved by the core
    data = load("text-files", tmp_path, files=["d/reviews.pos", str(tmp_path / "d" / "reviews.neg")])
    assert data.classes == ["neg", "pos"] and len(data.train) == 5


def test_text_files_class_from_stem_of_txt(tmp_path):
    for name in ("happy", "sad"):
        (tmp_path / f"{name}.txt").write_text(f"{name} one\n{name} two\n", encoding="utf-8")
    data = load("text-files", tmp_path, files=["happy.txt", "sad.txt"])
    assert data.classes == ["happy", "sad"]


def test_text_files_wrong_encoding_names_file_line_and_option(tmp_path):
    path = tmp_path / "reviews.pos"
    path.write_bytes("a fine film\nsecond line\nthe caf\u00e9 scene \u2014 great\n".encode("cp1252"))
    (tmp_path / "reviews.neg").write_text("bad\n", encoding="utf-8")
    with pytest.raises(UserError) as exc:
        load("text-files", tmp_path, files=["reviews.pos", "reviews.neg"])
    msg = str(exc.value)
    assert str(path) in msg and "line 3" in msg and "encoding" in msg and "cp1252" in msg
    data = load("text-files", tmp_path, files=["reviews.pos", "reviews.neg"], encoding="cp1252")
    assert "the caf\u00e9 scene \u2014 great" in data.train.items


def test_text_files_empty_lines_skipped_and_counted(tmp_path):
    (tmp_path / "a.pos").write_text("one\n\n  \ntwo\n\n", encoding="utf-8")
    (tmp_path / "a.neg").write_text("three\n", encoding="utf-8")
    logged = []
    data = load("text-files", tmp_path, log=logged.append, files=["a.pos", "a.neg"])
    assert len(data.train) == 3
    assert len(data.skipped) == 3 and all("empty line" in s for s in data.skipped)
    assert any("3 empty line" in m and "a.pos" in m for m in logged)


@pytest.mark.parametrize("files, match", [
    (["only.pos"], "gives 1 class"),
    (["x/a.pos", "y/b.pos"], "both give class 'pos'"),
    (["missing.neg", "only.pos"], "no such file"),
    ("only.pos", "expected a table"),
])
def test_text_files_errors(tmp_path, files, match):
    (tmp_path / "only.pos").write_text("fine\n", encoding="utf-8")
    with pytest.raises(UserError, match=match):
        load("text-files", tmp_path, files=files)


def test_text_files_bad_encoding_name(tmp_path):
    (tmp_path / "a.pos").write_text("x\n", encoding="utf-8")
    with pytest.raises(UserError, match="unknown encoding 'utf-9'"):
        load("text-files", tmp_path, files={"a": "a.pos", "b": "a.pos"}, encoding="utf-9")


# ------------------------------------------------------------------ csv / tsv / jsonl

def write_table(tmp_path: Path, kind: str, rows: list[dict], name: str = "train") -> str:
    path = tmp_path / f"{name}.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        sep = "," if kind == "csv" else "\t"
        cols = list(rows[0])
        lines = [sep.join(cols)] + [sep.join(str(r[c]) for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.name


ROWS = [{"id": 1, "review": "great movie", "stars": "pos"}, {"id": 2, "review": "awful movie", "stars": "neg"},
        {"id": 3, "review": "fun", "stars": "pos"}]


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_tables_load(tmp_path, kind):
    path = write_table(tmp_path, kind, ROWS)
    test = write_table(tmp_path, kind, ROWS[:2], "test")
    data = load(kind, tmp_path, path=path, test_path=test, text_column="review", label_column="stars")
    assert data.classes == ["neg", "pos"]
    assert list(data.train.items) == ["great movie", "awful movie", "fun"] and list(data.train.labels) == [1, 0, 1]
    assert len(data.test) == 2 and data.val is None


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_tables_missing_label_column_lists_columns(tmp_path, kind):
    path = write_table(tmp_path, kind, ROWS)
    with pytest.raises(UserError) as exc:
        load(kind, tmp_path, path=path, text_column="review", label_column="label")
    msg = str(exc.value)
    assert "label_column" in msg and "'label'" in msg
    assert all(f"'{c}'" in msg for c in ("id", "review", "stars"))


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_tables_single_class(tmp_path, kind):
    path = write_table(tmp_path, kind, [dict(r, stars="pos") for r in ROWS])
    with pytest.raises(UserError, match="1 class.*'pos'"):
        load(kind, tmp_path, path=path, text_column="review", label_column="stars")


def test_csv_quoting_numeric_labels_and_skips(tmp_path):
    (tmp_path / "t.csv").write_text('text,label\n"good, really good",10\n"bad ""indeed""",2\n'
                                    '"multi\nline",2\n,2\nno label,\n\nshort\n', encoding="utf-8")
    data = load("csv", tmp_path, path="t.csv")
    assert data.classes == ["2", "10"]  # numeric labels sort as numbers
    assert list(data.train.items) == ["good, really good", 'bad "indeed"', "multi\nline"]
    assert list(data.train.labels) == [1, 0, 0]
    assert len(data.skipped) == 4  # line 8 is blank: counted too
    assert any("t.csv:6: empty text" in s for s in data.skipped) and any("t.csv:8: blank row" in s for s in data.skipped)


def test_csv_without_header_uses_indexes(tmp_path):
    (tmp_path / "t.csv").write_text("0,dull\n1,fun\n1,nice\n", encoding="utf-8")
    data = load("csv", tmp_path, path="t.csv", header=False, text_column=1, label_column=0)
    assert data.classes == ["0", "1"] and list(data.train.items) == ["dull", "fun", "nice"]
    with pytest.raises(UserError, match="0-based indexes.*2 column"):
        load("csv", tmp_path, path="t.csv", header=False)
    with pytest.raises(UserError, match="no column 5.*0 \\('0'\\), 1 \\('dull'\\)"):
        load("csv", tmp_path, path="t.csv", header=False, text_column=1, label_column=5)


def test_tsv_does_not_interpret_quotes(tmp_path):
    (tmp_path / "t.tsv").write_text('sentence\tlabel\n"the " best\t1\nit \'s bad "\t0\n', encoding="utf-8")
    data = load("tsv", tmp_path, path="t.tsv", text_column="sentence")
    assert list(data.train.items) == ['"the " best', "it 's bad \""]


def test_csv_wrong_encoding(tmp_path):
    (tmp_path / "t.csv").write_bytes("text,label\nna\u00efve,1\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"t\.csv: line 2.*data\.options\.encoding"):
        load("csv", tmp_path, path="t.csv")


def test_jsonl_bad_line_and_mixed_labels(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": true}\n{"text": "b", "label": false}\n'
                                      '{"text": "c"}\n', encoding="utf-8")
    data = load("jsonl", tmp_path, path="t.jsonl")
    assert data.classes == ["false", "true"] and len(data.train) == 2 and len(data.skipped) == 1
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl: line 2: not valid JSON"):
        load("jsonl", tmp_path, path="bad.jsonl")


# ------------------------------------------------------------------ hf

@pytest.fixture(scope="module")
def disk_dataset(tmp_path_factory):
    datasets = pytest.importorskip("datasets")
    root = tmp_path_factory.mktemp("hfdata")
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"])})

    def split(texts, labels):
        return datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=feats)

    datasets.DatasetDict({
        "train": split(["good", "bad", "fine", "awful", ""], [1, 0, 1, 0, 1]),
        "validation": split(["nice", "dull"], [1, 0]),
        "test": split(["hidden a", "hidden b"], [-1, -1]),  # unlabelled, like GLUE's test splits
    }).save_to_disk(str(root / "dd"))
    datasets.Dataset.from_dict({"text": ["x", "y", "z"], "label": ["b", "a", "b"]}).save_to_disk(str(root / "one"))
    return root


def test_hf_save_to_disk_auto_splits(disk_dataset):
    data = load("hf", disk_dataset, path="dd", text_column="sentence")
    assert data.classes == ["negative", "positive"]  # the ClassLabel's own names
    assert list(data.train.items) == ["good", "bad", "fine", "awful"] and list(data.train.labels) == [1, 0, 1, 0]
    assert list(data.val.items) == ["nice", "dull"]
    assert data.test is None  # 'auto' skips an unlabelled test split; the core carves one
    assert data.skipped == ["train[4]: no text"]


def test_hf_named_splits(disk_dataset):
    data = load("hf", disk_dataset, path="dd", text_column="sentence", val_split="", test_split="validation")
    assert data.val is None and list(data.test.items) == ["nice", "dull"]
    with pytest.raises(UserError, match="no labelled examples"):
        load("hf", disk_dataset, path="dd", text_column="sentence", test_split="test")
    with pytest.raises(UserError, match="no split 'dev'.*train, validation, test"):
        load("hf", disk_dataset, path="dd", text_column="sentence", val_split="dev")


def test_hf_single_dataset_and_plain_labels(disk_dataset):
    data = load("hf", disk_dataset, path="one")
    assert data.classes == ["a", "b"] and list(data.train.labels) == [1, 0, 1]


def test_hf_missing_column_lists_columns(disk_dataset):
    with pytest.raises(UserError, match="no column 'text'.*'sentence', 'label'"):
        load("hf", disk_dataset, path="dd")


def test_hf_not_a_dataset_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a save_to_disk folder"):
        load("hf", tmp_path, path="empty")
    with pytest.raises(UserError, match="give dataset"):
        load("hf", tmp_path)


def test_hf_offline_uncached_dataset_fails_fast(tmp_path, monkeypatch, network_attempts):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as exc:
        load("hf", tmp_path, dataset="tlhub-test-nonexistent/no-such-dataset", config="x")
    assert network_attempts == []
    msg = str(exc.value)
    assert "tlhub-test-nonexistent/no-such-dataset" in msg and "save_to_disk" in msg and "HF_HUB_OFFLINE" in msg


# ------------------------------------------------------------------ rt-polarity (real data beside the repo)

@needs_rt
def test_rt_polarity_files():
    data = load("text-files", RT, files=["rt-polarity.pos", "rt-polarity.neg"], encoding="cp1252")
    assert data.classes == ["neg", "pos"] and len(data.train) == 10_662 and not data.skipped
    assert sum(data.train.labels) == 5331


@needs_rt
def test_rt_polarity_as_utf8_points_at_the_byte():
    with pytest.raises(UserError) as exc:
        load("text-files", RT, files=["rt-polarity.pos", "rt-polarity.neg"])
    msg = str(exc.value)
    assert "rt-polarity.neg" in msg or "rt-polarity.pos" in msg
    assert "line " in msg and "data.options.encoding" in msg and "cp1252" in msg
