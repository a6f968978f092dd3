"""Recipes: parsing, every validation error in one message, overrides, relative paths."""
from __future__ import annotations

import pytest

from tlhub.errors import UserError
from tlhub.recipe import apply_overrides, load_and_validate, load_recipe, parse_value


def errors_of(write_recipe, text) -> list[str]:
    with pytest.raises(UserError) as exc:
        load_and_validate(write_recipe(text))
    return exc.value.errors


def test_tiny_recipe_parses_into_frozen_dataclasses(tiny_recipe):
    r = load_and_validate(tiny_recipe)
    assert r.model.backbone == "tiny-cnn" and r.model.head_options == {"hidden": [16], "dropout": 0.0}
    assert [p.name for p in r.phases] == ["head", "top"]
    assert r.phases[1].freeze_options == {"k": 2} and r.phases[1].lr == 0.003
    with pytest.raises(Exception):
        r.phases[0].epochs = 5  # frozen


def test_malformed_toml(write_recipe):
    errs = errors_of(write_recipe, "[model\nbackbone = 1")
    assert len(errs) == 1 and "malformed TOML" in errs[0]


def test_unknown_section_and_key_with_suggestions(write_recipe, tiny_recipe_text):
    text = tiny_recipe_text.replace("[train]", "[trian]").replace("batch_size = 16", "batch_sise = 16")
    errs = errors_of(write_recipe, text)
    assert any(e.startswith("trian: unknown section") and "did you mean 'train'" in e for e in errs)
    assert any(e.startswith("data.batch_sise: unknown key") and "did you mean 'batch_size'" in e for e in errs)


def test_unknown_components_with_close_names_and_provider(write_recipe, tiny_recipe_text, monkeypatch):
    monkeypatch.setenv("TLHUB_BLOCK_PLUGINS", "vision")  # so mnist-5k is a known name of an absent plugin
    text = (tiny_recipe_text.replace('"tiny-cnn"', '"tiny-cn"').replace('head = "mlp"', 'head = "mpl"')
            .replace('freeze = "top_k"', 'freeze = "topk"').replace('"synthetic"', '"mnist-5k"'))
    errs = errors_of(write_recipe, text)
    joined = "\n".join(errs)
    assert "model.backbone: unknown backbone 'tiny-cn' (did you mean 'tiny-cnn'?)" in joined
    assert "model.head: unknown head 'mpl' (did you mean 'mlp'?)" in joined
    assert "phases.1.freeze: unknown freeze policy 'topk'" in joined and "'top_k'" in joined
    assert "mnist-5k" in joined and "tlhub-vision" in joined  # a known name from an absent plugin


def test_wrong_types_and_bad_values_all_reported(write_recipe, tiny_recipe_text):
    text = (tiny_recipe_text.replace("epochs = 3", "epochs = 0").replace("lr = 0.01", "lr = -1")
            .replace("batch_size = 16", 'batch_size = "big"').replace("seed = 0", "seed = 1.5")
            .replace("{ k = 2 }", "{ k = \"two\" }").replace('scheduler = "cosine"', 'scheduler = "cosin"'))
    errs = errors_of(write_recipe, text)
    joined = "\n".join(errs)
    for expected in ("phases.0.epochs: must be >= 1, got 0", "phases.0.lr: must be > 0, got -1",
                     "data.batch_size: expected an integer, got 'big'", "train.seed: expected an integer",
                     "phases.1.freeze_options.k: expected an integer", "phases.1.scheduler: unknown scheduler 'cosin'",
                     "did you mean 'cosine'"):
        assert expected in joined, (expected, errs)


def test_empty_phase_list_and_missing_required(write_recipe):
    errs = errors_of(write_recipe, "[model]\nhead = 'linear'\n[data]\nbatch_size = 4\n")
    assert "phases: at least one [[phases]] table is required" in errs
    assert any(e.startswith("model.backbone: required") for e in errs)
    assert any(e.startswith("data.source: required") for e in errs)


def test_unknown_component_option(write_recipe, tiny_recipe_text):
    errs = errors_of(write_recipe, tiny_recipe_text.replace("dropout = 0.0", "dropuot = 0.0"))
    assert any("model.head_options.dropuot: unknown option (did you mean 'dropout'?)" in e for e in errs)


def test_missing_file():
    with pytest.raises(UserError, match="no such recipe file"):
        load_recipe("/nonexistent/r.toml")


def test_overrides_by_index_and_name_with_toml_values(tiny_recipe):
    r = load_and_validate(tiny_recipe, ["phases.1.epochs=7", "phases.head.lr=1e-4", "data.batch_size=64",
                                        "model.head_options.hidden=[8, 4]", "data.source=synthetic",
                                        "data.options.classes=3"])
    assert r.phases[1].epochs == 7 and r.phases[0].lr == 1e-4 and r.data.batch_size == 64
    assert r.model.head_options["hidden"] == [8, 4] and r.data.options == {"classes": 3}


def test_bad_overrides():
    raw = {"phases": [{"epochs": 1}]}
    with pytest.raises(UserError) as exc:
        apply_overrides(raw, ["phases.5.epochs=2", "noequals", "phases.0.epochs.x=1"])
    assert len(exc.value.errors) == 3
    assert parse_value("2") == 2 and parse_value("mnist") == "mnist" and parse_value("true") is True


def test_override_type_error_is_reported(tiny_recipe):
    with pytest.raises(UserError, match="phases.0.epochs: expected an integer"):
        load_and_validate(tiny_recipe, ["phases.0.epochs=many"])


def test_relative_paths_resolve_against_recipe_folder(tmp_path, tiny_recipe_text):
    sub = tmp_path / "deep" / "recipes"
    sub.mkdir(parents=True)
    p = sub / "r.toml"
    p.write_text(tiny_recipe_text)
    r = load_recipe(p)
    from tlhub.interfaces import DataContext
    assert DataContext(__import__("pathlib").Path(r.base_dir), 0).path("../data") == sub / "../data"
