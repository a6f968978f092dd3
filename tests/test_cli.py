"""The CLI through click's runner, and once through the installed console script."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tlhub.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_list_freeze_policies_shows_the_five_builtins():
    res = invoke("list", "freeze-policies")
    assert res.exit_code == 0
    names = [line.split()[0] for line in res.output.splitlines()]
    assert names == ["from_group", "frozen", "none", "pattern", "top_k"]
    assert all("tlhub.plugins.builtins.freeze_policies" in line for line in res.output.splitlines())


def test_list_other_kinds_and_plugins():
    assert "tiny-cnn" in invoke("list", "backbones").output
    assert "synthetic" in invoke("list", "data-sources").output
    assert "mlp" in invoke("list", "heads").output
    res = invoke("plugins")
    assert res.exit_code == 0 and "tlhub-tiny 0.1.0" in res.output and "register_backbones" in res.output
    assert invoke("list", "nonsense").exit_code == 2


def test_validate_ok_and_broken(tiny_recipe, write_recipe, tiny_recipe_text):
    res = invoke("validate", tiny_recipe)
    assert res.exit_code == 0 and res.output.strip().endswith(": ok")
    bad = write_recipe(tiny_recipe_text.replace("epochs = 3", "epochs = 0").replace('"mlp"', '"mpl"'), "bad.toml")
    res = invoke("validate", bad)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"error: {bad}: ") for line in lines)
    assert "Traceback" not in res.output


def test_validate_applies_overrides_as_run_does(tiny_recipe):
    assert invoke("validate", tiny_recipe, "--set", "data.batch_size=3").exit_code == 0
    res = invoke("validate", tiny_recipe, "-s", "data.batch_size=3", "-s", "phases.0.epochs=0")
    assert res.exit_code == 2 and "epochs" in res.output and "Traceback" not in res.output


def test_malformed_and_missing_recipe_exit_2(write_recipe):
    res = invoke("validate", write_recipe("[model\n"))
    assert res.exit_code == 2 and "malformed TOML" in res.output and "Traceback" not in res.output
    res = invoke("run", "/nonexistent.toml")
    assert res.exit_code == 2 and "no such recipe file" in res.output


def test_show_applies_overrides(tiny_recipe):
    res = invoke("show", tiny_recipe, "phases.1.epochs=9", "data.batch_size=3")
    assert res.exit_code == 0
    import tomllib
    shown = tomllib.loads(res.output)
    assert shown["phases"][1]["epochs"] == 9 and shown["data"]["batch_size"] == 3
    assert shown["phases"][0]["bn"] == "eval"  # defaults filled in


def test_run_through_click(tiny_recipe, tmp_path):
    res = invoke("run", tiny_recipe, "phases.0.epochs=1", "phases.1.epochs=1", "--quiet")
    assert res.exit_code == 0, res.output
    assert "test accuracy" in res.output and str(tmp_path / "run") in res.output
    res = invoke("run", tiny_recipe, "phases.0.epochs=1")
    assert res.exit_code == 2 and "--overwrite" in res.output  # the finished run is not overwritten


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    res = invoke("report", tmp_path)
    assert res.exit_code == 2 and "not a finished tlhub run directory" in res.output


def test_installed_console_script(tiny_recipe):
    exe = shutil.which("tlhub", path=str(Path(sys.executable).parent)) or shutil.which("tlhub")
    assert exe, "the tlhub console script is not installed"
    proc = subprocess.run([exe, "validate", str(tiny_recipe)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{tiny_recipe}: ok"
    proc = subprocess.run([exe, "run", str(tiny_recipe), "phases.0.lr=-1"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: phases.0.lr: must be > 0, got -1.0"
