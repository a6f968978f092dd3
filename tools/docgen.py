"""Generate the reference pages under docs/ from the code, so they cannot drift.

    python tools/docgen.py            # (re)write docs/recipes.md, docs/cli.md, docs/hooks.md
    python tools/docgen.py --check    # exit 1 and name the stale files instead of writing

Sources: the recipe dataclasses in ``tlhub/recipe/schema.py`` (fields, defaults, metadata "help" and
"choices"), the options declared by the registered components of tlhub and its first-party
plugins (``DOC_PLUGINS``), the click commands of ``tlhub.cli.cli``, the hook specifications in
``tlhub/hookspecs.py`` and the descriptor and contract classes. ``tests/test_docs.py`` fails when
a generated page differs from what this module produces now.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from pathlib import Path
from typing import Callable, get_args, get_origin, get_type_hints

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling modules, also when loaded by path
from docgen_hooks import hook_names, render_hooks  # noqa: E402,F401 - hook_names: tests/test_docs.py
from docgen_text import (COMMAND, _field_default, banner, cell, default_text, meaning, toml_value,  # noqa: E402
                         type_name)

DOC_PLUGINS = ("vision", "text")  # entry-point names of the first-party plugins documented in recipes.md
GENERATED = ("recipes.md", "cli.md", "hooks.md")
WIDTH = 100


SECTION_TEXT = {
    "model": "The backbone, its weights, and the new head.",
    "data": "Where the examples come from, how they are split and batched.",
    "data.augment": "Random augmentation of training images (any of these on makes the input pipeline random, "
                    "which turns frozen-prefix caching off).",
    "data.test": "An optional separate data source for the test split; its classes must be a subset of the "
                 "training classes.",
    "phases": "One `[[phases]]` table per phase, run in order. Each phase applies its freeze policy to the "
              "backbone's parameter groups, builds a fresh optimizer from the trainable parameters and trains "
              "for `epochs`. Phases are addressed in overrides by index from 0 or by name "
              "(`phases.finetune.lr=3e-5`).",
    "train": "Process-wide training settings.",
    "eval": "What the test split is scored with.",
    "output": "Where the run directory goes.",
}


def _fields_table(cls: type, where: str) -> list[str]:
    hints = get_type_hints(cls)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.name in ("path", "base_dir"):
            continue
        if "help" not in f.metadata:
            raise ValueError(f"{cls.__name__}.{f.name} ({where}) has no metadata 'help'; add one in tlhub/recipe/schema.py")
        lines.append(f"| `{f.name}` | {type_name(hints[f.name])} | {default_text(_field_default(f))} | "
                     f"{meaning(f.metadata['help'], f.metadata.get('choices'))} |")
    return lines


def _sections() -> list[tuple[str, type, str]]:
    """(heading, dataclass, dotted path) for every recipe table, nested ones after their parent."""
    from tlhub import recipe as R

    out: list[tuple[str, type, str]] = []

    def add(path: str, cls: type, heading: str) -> None:
        out.append((heading, cls, path))
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            typ = hints[f.name]
            inner = [a for a in get_args(typ) if a is not type(None)] if get_origin(typ) else [typ]
            if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
                add(f"{path}.{f.name}", inner[0], f"[{path}.{f.name}]")

    for name, cls in R.SECTIONS.items():
        add(name, cls, f"[[{name}]]" if name == "phases" else f"[{name}]")
    return out


def recipe_keys() -> list[str]:
    """Every dotted key of the recipe schema, e.g. ``data.augment.flip`` and ``phases.lr``."""
    keys = []
    for _, cls, path in _sections():
        keys += [f"{path}.{f.name}" for f in dataclasses.fields(cls) if f.name not in ("path", "base_dir")]
    return keys


def doc_registry():
    """The registry of tlhub's built-ins and the first-party plugins only (whatever else is installed)."""
    from tlhub import plugins

    saved = {k: os.environ.pop(k, None) for k in ("TLHUB_PLUGINS", "TLHUB_BLOCK_PLUGINS")}
    os.environ["TLHUB_PLUGINS"] = ",".join(DOC_PLUGINS)
    try:
        pm, infos = plugins.get_plugin_manager()
    finally:
        os.environ.pop("TLHUB_PLUGINS", None)
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    loaded = {i.name for i in infos if not i.error}
    missing = [p for p in DOC_PLUGINS if p not in loaded]
    if missing:
        raise RuntimeError(f"the docs describe the first-party plugins {', '.join(DOC_PLUGINS)}, but "
                           f"{', '.join(missing)} did not load; install them first "
                           f"(pip install -e plugins/tlhub-vision -e plugins/tlhub-text)")
    return plugins.build_registry(pm)


KIND_TEXT = {
    "tasks": ("Tasks", "`model.task`", "`model.task_options`"),
    "modalities": ("Modalities", "`data.source` (a data source gives one modality's data)", "`data.preprocess`"),
    "backbones": ("Backbones", "`model.backbone`", "`model.backbone_options`"),
    "heads": ("Heads", "`model.head`", "`model.head_options`"),
    "freeze-policies": ("Freeze policies", "`phases.N.freeze`", "`phases.N.freeze_options`"),
    "data-sources": ("Data sources", "`data.source` (and `data.test.source`)", "`data.options`"),
    "metrics": ("Metrics", "`eval.metrics` (names only, never a path)", ""),
    "optimizers": ("Optimizers", "`phases.N.optimizer`", ""),
    "schedulers": ("Schedulers", "`phases.N.scheduler`", ""),
}


def _options_table(options) -> list[str]:
    from tlhub.options import REQUIRED
    if not options:
        return ["No options."]
    lines = ["| option | type | default | meaning |", "|---|---|---|---|"]
    for o in options:
        default = "**required**" if o.default is REQUIRED else f"`{toml_value(o.default)}`"
        lines.append(f"| `{o.name}` | {type_name(o.type)} | {default} | {meaning(o.help, o.choices)} |")
    return lines


def render_recipes() -> str:
    from tlhub.registry import KINDS

    out = ["# Recipe reference", "", banner("tlhub/recipe/schema.py and the options declared by the components of "
                                           f"tlhub and its plugins {', '.join(DOC_PLUGINS)}").rstrip(), "",
           "A recipe is a TOML file. Every key of the sections below has a default, but a recipe must name "
           "`model.backbone` and `data.source` and have at least one `[[phases]]` table; component options "
           "marked **required** must be given. Unknown keys are errors (with a \"did you mean\" suggestion), "
           "and `tlhub validate` reports every error at once. "
           "Override any key on the command line with `key=value` (TOML values): "
           "`tlhub run r.toml phases.1.epochs=2 data.batch_size=64 model.head_options.dropout=0.2`. "
           "Relative paths inside a recipe resolve against the recipe's folder; `output.dir` against the "
           "working directory.", "", "## Sections", ""]
    for heading, cls, path in _sections():
        out += [f"### `{heading}`", ""]
        if SECTION_TEXT.get(path):
            out += [SECTION_TEXT[path], ""]
        out += _fields_table(cls, path) + [""]
    registry = doc_registry()
    out += ["## Components and their options", "",
            "The names a recipe may use, and the options each declares (checked by `tlhub validate`). "
            f"These are tlhub's built-ins and the first-party plugins ({', '.join(DOC_PLUGINS)}); "
            "`tlhub list KIND` shows what is installed where you are, third-party plugins included.", ""]
    for kind in KINDS:
        title, name_key, opt_key = KIND_TEXT[kind]
        out += [f"### {title}", "", f"Named by {name_key}" + (f"; options in {opt_key}." if opt_key else "."), ""]
        for name in registry.names(kind):
            spec = registry.get(kind, name)
            facts = [f"plugin `{spec.plugin}`"]
            if getattr(spec, "modality", None):
                facts.append(f"{spec.modality}")
            if getattr(spec, "feeds", None):
                facts.append(f"feeds {' / '.join(spec.feeds)} backbones")
            if getattr(spec, "default_weights", None):
                facts.append(f"default weights `{spec.default_weights}`")
            out += [f"#### `{name}`", "", f"{spec.summary} ({'; '.join(facts)}).", ""]
            if opt_key:
                out += _options_table(spec.options) + [""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------ cli.md

def walk_commands(cmd=None, path: tuple[str, ...] = ("tlhub",), parent=None):
    """Yield (path, command, context) for the group and every command below it, recursively."""
    import click

    from tlhub.cli import cli
    cmd = cmd or cli
    settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(cmd, info_name=path[-1], parent=parent, **settings)
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                yield from walk_commands(sub, path + (name,), ctx)


def _param_row(param, ctx) -> str:
    import click
    if isinstance(param, click.Argument):
        name = param.human_readable_name + ("..." if param.nargs == -1 else "")
        required = "required" if param.required else "optional"
        return f"| `{name}` | {cell(_type_text(param))} | {required} | |"
    names = ", ".join(f"`{o}`" for o in param.opts + param.secondary_opts)
    if param.is_flag and not param.count:
        typ, default = "flag", ""
    else:
        typ = _type_text(param)
        unset = getattr(click.core, "UNSET", None)
        hidden = param.default is None or param.default is unset or param.default == () or not param.show_default \
            and param.default is False
        default = "" if hidden else f"`{param.default}`"
        if param.required:
            default = "required"
    if param.multiple:
        typ += ", repeatable"
    return f"| {names} | {cell(typ)} | {default} | {cell(param.help or '')} |"


def _type_text(param) -> str:
    import click
    t = param.type
    if isinstance(t, click.Choice):
        return " | ".join(str(c) for c in t.choices)
    if isinstance(t, click.Path):
        return "directory" if not t.file_okay else ("file" if not t.dir_okay else "path")
    return {"text": "text", "integer": "integer", "float": "number", "boolean": "boolean"}.get(t.name, t.name)


def render_cli() -> str:
    import click
    out = ["# Command-line reference", "", banner("the click commands of tlhub.cli").rstrip(), "",
           "Every command takes `-h` / `--help`. A mistake of the user's (bad recipe, unknown name, missing "
           "file) prints `error: ...` lines on stderr and exits with status 2; an interrupted run exits 130.", ""]
    commands = list(walk_commands())
    out += ["| command | what it does |", "|---|---|"]
    for path, cmd, _ in commands[1:]:
        out.append(f"| [`{' '.join(path)}`](#{'-'.join(path)}) | {cell(cmd.get_short_help_str(limit=200))} |")
    out.append("")
    for path, cmd, ctx in commands:
        anchor = "-".join(path)
        out += [f'<a id="{anchor}"></a>', "", f"## `{' '.join(path)}`", "",
                "```", cmd.get_usage(ctx).strip(), "```", ""]
        help_text = inspect.cleandoc(cmd.help or "").replace("\b\n", "")
        if help_text:
            out += [help_text, ""]
        params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
        if params:
            out += ["| argument / option | type | default | meaning |", "|---|---|---|---|"]
            out += [_param_row(p, ctx) for p in params] + [""]
        if isinstance(cmd, click.Group):
            subs = [n for n in cmd.list_commands(ctx) if not getattr(cmd.get_command(ctx, n), "hidden", False)]
            out += ["Commands: " + ", ".join(f"[`{n}`](#{anchor}-{n})" for n in subs) + ".", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------ hooks.md

RENDERERS: dict[str, Callable[[], str]] = {"recipes.md": render_recipes, "cli.md": render_cli,
                                           "hooks.md": render_hooks}


def default_docs_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "docs"


def generate() -> dict[str, str]:
    return {name: RENDERERS[name]() for name in GENERATED}


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog=COMMAND, description="Regenerate docs/recipes.md, cli.md and hooks.md.")
    parser.add_argument("--out", type=Path, default=default_docs_dir(), help="docs folder (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate().items():
        path = args.out / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    if not stale:
        print("docs are up to date")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
