"""Results of a hostile-user probe, continued: the smaller cases, and images of every PIL mode."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_hostile import invoke, one_line_error

import tlhub
from tlhub.cli import cli
from tlhub.errors import UserError

# ---------------------------------------------------------------- 6. smaller

def test_resume_into_a_folder_that_is_not_a_run_writes_nothing(tiny_recipe, tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    one_line_error(invoke("run", tiny_recipe, "--resume", stranger, "--quiet"), "--resume: no whole checkpoint in")
    assert sorted(p.name for p in stranger.iterdir()) == ["notes.txt"]  # no run.log left behind


def _load_source(name, root, **options):
    from tlhub.interfaces import DataContext
    from tlhub.options import resolve_options
    from tlhub.plugins import get_registry
    spec = get_registry().get("data-sources", name)
    opts, errors = resolve_options("data.options", options, spec.options)
    assert not errors
    logged: list[str] = []
    return spec.load(opts, DataContext(root, 0, log=logged.append)), logged


def test_blank_csv_rows_are_counted(tmp_path):
    pytest.importorskip("tlhub_text")
    (tmp_path / "t.csv").write_text("text,label\ngood,pos\n\n,\nbad,neg\n , \nfine,pos\n", encoding="utf-8")
    data, logged = _load_source("csv", tmp_path, path="t.csv")
    assert list(data.train.items) == ["good", "bad", "fine"]
    assert sorted(data.skipped) == [f"{tmp_path / 't.csv'}:{n}: blank row" for n in (3, 4, 6)]
    assert any("skipped 3 row(s)" in m for m in logged), logged


def test_same_column_for_text_and_label_says_so(tmp_path, tiny_recipe):
    pytest.importorskip("tlhub_text")
    (tmp_path / "t.csv").write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    with pytest.raises(UserError, match="text_column and label_column are the same column"):
        _load_source("csv", tmp_path, path="t.csv", text_column="label", label_column="label")
    with pytest.raises(UserError, match="name the same column of"):  # a name and an index of one column
        _load_source("csv", tmp_path, path="t.csv", text_column="text", label_column=0)


@pytest.mark.parametrize("content", [None, "[model\nx = 1\n"])
def test_file_errors_name_the_file_once(tmp_path, content):
    path = tmp_path / "r.toml"
    if content is not None:
        path.write_text(content)
    res = invoke("validate", path)
    one_line_error(res, "no such recipe file" if content is None else "malformed TOML")
    assert res.output.count(str(path)) == 1, res.output


@pytest.mark.parametrize("override, needles", [
    ("phases.0.freeze=auto_", ["phases.0.freeze: unknown freeze policy 'auto_' (did you mean 'auto'",
                               "available: auto, from_group"]),
    ("phases.tpo.lr=1", ["override phases.tpo: no item 'tpo' (did you mean 'top'?)", "names: head, top"]),
    ("phases.finetun.lr=1", ["no item 'finetun'", "names: head, top"]),
])
def test_freeze_and_phase_names_get_suggestions(tiny_recipe, override, needles):
    res = invoke("show", tiny_recipe, override)
    one_line_error(res, *needles)
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_predict_on_a_folder_skips_a_bad_file(trained_image_model, tmp_path):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    res = CliRunner().invoke(cli, ["predict", str(trained_image_model), str(folder), "--json"])
    assert res.exit_code == 0, res.output
    assert "warning: skipped 1 file(s) that are not readable images" in res.output and "broken.png" in res.output
    assert [Path(r["input"]).name for r in json.loads(res.output[res.output.index("["):])] == ["good.png"]
    one_line_error(invoke("predict", trained_image_model, folder / "broken.png"), "broken.png: cannot read the image")


def test_top_zero_is_an_error(trained_image_model, tmp_path):
    from PIL import Image
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")
    res = CliRunner().invoke(cli, ["predict", str(trained_image_model), str(tmp_path / "x.png"), "--top", "0"])
    one_line_error(res, "--top", "0 is not in the range x>=1")


# ---------------------------------------------------------------- every PIL mode the loaders accept

def _one_image_per_mode(folder: Path) -> dict[str, tuple[Path, tuple[int, int, int]]]:
    """mode -> (file, the 8-bit RGB it must become): 1, L, P, RGB, RGBA as PNG; CMYK, I, F as TIFF."""
    import numpy as np
    from PIL import Image
    size, rgb = (16, 16), (100, 150, 200)
    palette = Image.new("P", size, 3)
    palette.putpalette([0, 0, 0] * 3 + list(rgb) + [0, 0, 0] * 252)
    made = {
        "1": (Image.new("1", size, 1), (255, 255, 255)),
        "L": (Image.new("L", size, 100), (100, 100, 100)),
        "P": (palette, rgb),
        "RGB": (Image.new("RGB", size, rgb), rgb),
        "RGBA": (Image.new("RGBA", size, (*rgb, 255)), rgb),
        "CMYK": (Image.new("CMYK", size, (0, 0, 0, 155)), (100, 100, 100)),  # 155 of black ink on white
        "I;16": (Image.fromarray(np.full(size, 100 * 257, np.uint16)), (100, 100, 100)),  # 16-bit: x 257
        "I": (Image.fromarray(np.full(size, 100 * 257, np.int32)), (100, 100, 100)),
        "F": (Image.fromarray(np.full(size, 100 / 255, np.float32)), (100, 100, 100)),  # floats in 0..1
    }
    out = {}
    for mode, (img, want) in made.items():
        assert img.mode == mode
        path = folder / f"{mode.replace(';', '_')}.{'tiff' if mode in ('CMYK', 'I', 'F') else 'png'}"
        img.save(path)
        out[mode] = (path, want)
    return out


def test_every_pil_mode_is_scaled_alike_in_training_and_predict(trained_image_model, tmp_path):
    import numpy as np
    from PIL import Image

    from tlhub.data.decode import to_pil
    from tlhub.data.images import ImageDataset, build_transform
    from tlhub.interfaces import ImagePreprocessing
    images = _one_image_per_mode(tmp_path)
    transform, _ = build_transform(ImagePreprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)), 16, None,
                                   train=False)
    predictor = tlhub.load(trained_image_model)
    for mode, (path, want) in images.items():
        assert Image.open(path).mode == mode, path
        assert to_pil(path).getpixel((0, 0)) == want, mode
        twin = tmp_path / f"twin-{path.stem}.png"
        Image.new("RGB", (16, 16), want).save(twin)
        seen, expected = ImageDataset([path, twin], [0, 0], transform)[0][0], ImageDataset([twin], [0], transform)[0][0]
        assert np.array_equal(seen.numpy(), expected.numpy()), mode  # training sees the 8-bit twin
        p = predictor.predict_proba([path, twin])
        assert np.allclose(p[0], p[1], atol=1e-6), mode  # and so does predict
    # one inf pixel in a float image: the others keep their place in the real range (not all black)
    hot = np.full((4, 4), 0.5, np.float32)
    hot[0, 0] = np.inf
    assert to_pil(Image.fromarray(hot)).getpixel((1, 1)) == (128, 128, 128)
