"""Plugin manager: built-ins as plugins, entry points, broken and duplicate plugins, block/allow."""
from __future__ import annotations

from importlib import metadata

import pluggy
import pytest

from tlhub import plugins
from tlhub.errors import UserError
from tlhub.hookspecs import hookimpl
from tlhub.registry import BackboneSpec, Registry


def test_builtins_and_tiny_plugin_registered():
    reg = plugins.get_registry()
    assert set(reg.names("freeze-policies")) >= {"frozen", "none", "top_k", "from_group", "pattern"}
    assert set(reg.names("heads")) >= {"linear", "mlp"}
    assert reg.get("heads", "mlp").plugin == "tlhub.plugins.builtins.heads"
    assert reg.get("backbones", "tiny-cnn").plugin == "tiny"
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert infos["tiny"].distribution == "tlhub-tiny"
    assert set(infos["tiny"].hooks) == {"register_backbones", "register_data_sources"}


def test_listing_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, tlhub.plugins as p; p.get_registry(); "
            "print('torch' in sys.modules, 'torchvision' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def _fake_entry_points(extra):
    real = metadata.entry_points

    def entry_points(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "tlhub":
            eps += extra
        return eps
    return entry_points


def test_broken_plugin_gives_one_line_and_others_work(monkeypatch, capsys):
    broken = metadata.EntryPoint(name="broken", value="tlhub_no_such_module_xyz", group="tlhub")
    monkeypatch.setattr(metadata, "entry_points", _fake_entry_points([broken]))
    reg = plugins.get_registry()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "plugin 'broken'" in err[0] and "failed to import" in err[0] and "ModuleNotFoundError" in err[0]
    assert "tiny-cnn" in reg.names("backbones")
    assert any(i.name == "broken" and i.error for i in plugins.plugin_infos())


def test_duplicate_names_name_both_plugins():
    class A:
        @hookimpl
        def register_backbones(self, register):
            register(BackboneSpec("dup", "a", "image", build=lambda w, o: None))

    pm, _ = plugins.get_plugin_manager()
    pm.register(A(), name="first-plugin")
    pm.register(A(), name="second-plugin")
    with pytest.raises(UserError) as exc:
        plugins.build_registry(pm)
    assert "'first-plugin'" in str(exc.value) and "'second-plugin'" in str(exc.value)


def test_misspelled_hook_fails_loudly(monkeypatch):
    import sys
    import types
    mod = types.ModuleType("tlhub_typo_plugin")

    @hookimpl
    def register_backbone(register):  # missing "s": check_pending must catch it
        pass
    mod.register_backbone = register_backbone
    monkeypatch.setitem(sys.modules, "tlhub_typo_plugin", mod)
    ep = metadata.EntryPoint(name="typo", value="tlhub_typo_plugin", group="tlhub")
    monkeypatch.setattr(metadata, "entry_points", _fake_entry_points([ep]))
    with pytest.raises(pluggy.PluginValidationError, match="register_backbone"):
        plugins.get_plugin_manager()


def test_block_and_allow_lists(monkeypatch):
    monkeypatch.setenv("TLHUB_BLOCK_PLUGINS", "tiny")
    assert "tiny-cnn" not in plugins.get_registry().names("backbones")
    plugins.reset()
    monkeypatch.delenv("TLHUB_BLOCK_PLUGINS")
    monkeypatch.setenv("TLHUB_PLUGINS", "tiny")
    reg = plugins.get_registry()
    assert "tiny-cnn" in reg.names("backbones")
    assert {i.name for i in plugins.plugin_infos()} == {"tiny", *plugins.BUILTIN_PLUGINS}
    plugins.reset()
    monkeypatch.setenv("TLHUB_PLUGINS", "")
    reg = plugins.get_registry()
    assert "tiny-cnn" not in reg.names("backbones") and "mlp" in reg.names("heads")  # built-ins always load


def test_unknown_name_suggests_and_names_provider(monkeypatch):
    with pytest.raises(UserError) as bare:  # a registry with no unloaded plugins to ask names no provider
        Registry().get("backbones", "resnet50")
    assert "unknown backbone 'resnet50'" in str(bare.value) and "provided by" not in str(bare.value)
    monkeypatch.setenv("TLHUB_BLOCK_PLUGINS", "vision")
    plugins.reset()
    with pytest.raises(UserError, match=r"installed plugin vision \(tlhub-vision\), which is not loaded"):
        plugins.get_registry().get("backbones", "resnet50")
    plugins.reset()
    monkeypatch.delenv("TLHUB_BLOCK_PLUGINS")
    reg = plugins.get_registry()
    with pytest.raises(UserError, match="did you mean 'tiny-cnn'"):
        reg.get("backbones", "tiny-cn")
