"""The ``tlhub`` entry point: registers the text backbones and data sources.

Only descriptors live here; torch, transformers and datasets are imported by ``build``/``load``
so that listing plugins stays cheap.
"""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.options import REQUIRED, Opt
from tlhub.registry import BackboneSpec, DataSourceSpec

POOLING = ("mean", "cls")
PAIR_ENCODINGS = ("cross", "bi", "both", "symmetric")


def _pair_encoding():
    return Opt("pair_encoding", str, "cross",
               "sentence pairs: 'cross' (one sequence, each sentence attends to the other) or 'bi' (each sentence "
               "encoded alone, mean-pooled; the head sees their product and distance) or 'both' (the two side by side: "
               "twice the tokens) or 'symmetric' (the cross sequence in both orders, features averaged: the same "
               "answer for (a, b) and (b, a); twice the tokens); all but 'cross' need pooling = 'mean'",
               choices=PAIR_ENCODINGS)


def _max_length():
    return Opt("max_length", int, 128, "tokens per text; longer texts are truncated (the count is logged)")


def build_hf(weights, options):
    from .loading import build_hf as build
    return build(weights, options)


def build_minilm(weights, options):
    from .loading import build_minilm as build
    return build(weights, options)


def _loader(module: str, name: str, *args):
    def load(options, ctx):
        import importlib
        return getattr(importlib.import_module(f"tlhub_text.sources.{module}"), name)(*args, options, ctx)
    return load


@hookimpl
def register_backbones(register):
    register(BackboneSpec(
        "minilm-l6", "all-MiniLM-L6-v2 sentence encoder (6 layers, 384 wide, 22.7M params), embedded: no network",
        "text", build_minilm, default_weights="pretrained", options=(
            _max_length(),
            Opt("pooling", str, "mean", "mean of the token states (masked) or the first token's", choices=POOLING),
            _pair_encoding())))
    register(BackboneSpec(
        "hf", "any BERT-family encoder (BERT, DistilBERT, RoBERTa, MiniLM, ...) by Hugging Face id or local folder",
        "text", build_hf, default_weights="pretrained", options=(
            Opt("model", str, REQUIRED, "Hugging Face id (e.g. 'bert-base-uncased') or a local model folder"),
            _max_length(),
            Opt("pooling", str, "cls", "'cls': the first token (through the pretrained pooler when the model has "
                                       "one), or 'mean' of the token states", choices=POOLING),
            _pair_encoding())))


_ENC = Opt("encoding", str, "utf-8", "text encoding of the files, e.g. 'utf-8', 'cp1252', 'latin-1'")


def _table_opts(header: bool) -> tuple[Opt, ...]:
    # csv/tsv columns are names, or 0-based indexes when header = false; jsonl keys are names
    col_type, col = (object, "column name, or 0-based index when header = false") if header else (str, "key")
    opts = [Opt("path", str, REQUIRED, "training file (relative paths: from the recipe's folder)"),
            Opt("val_path", str, "", "validation file (empty: carved from train)"),
            Opt("test_path", str, "", "test file (empty: carved from train)"),
            Opt("text_column", col_type, "text", f"text {col}"),
            Opt("label_column", object, "label",
                f"label {col}, or a list of them (one 0/1 column per label for task = 'multilabel', or several "
                f"targets for task = 'regression')"),
            Opt("text_pair", col_type, "", f"second sentence {col} of sentence pairs (both go through the "
                                           "tokenizer as one pair); empty: single texts")]
    if header:
        opts.append(Opt("header", bool, True, "the first row names the columns"))
    return tuple(opts) + (_ENC,)


@hookimpl
def register_data_sources(register):
    register(DataSourceSpec(
        "text-files", "one text file per class, one example per line (e.g. rt-polarity .pos/.neg)", "text",
        _loader("files", "load_text_files"), options=(
            Opt("files", object, REQUIRED, "{class = path, ...}, or a list of paths whose suffix (or stem, for "
                                           ".txt) names the class"),
            _ENC)))
    register(DataSourceSpec("csv", "a CSV file with a text and a label column", "text",
                            _loader("tables", "load_table", "csv"), options=_table_opts(True)))
    register(DataSourceSpec("tsv", "a tab-separated file with a text and a label column (quoted fields as in CSV; quotes that are only text, as in GLUE, stay text)", "text",
                            _loader("tables", "load_table", "tsv"), options=_table_opts(True)))
    register(DataSourceSpec("jsonl", "JSON lines: one object per line with a text and a label key", "text",
                            _loader("tables", "load_table", "jsonl"), options=_table_opts(False)))
    register(DataSourceSpec(
        "hf", "a Hugging Face datasets id (needs the network once) or a save_to_disk folder", "text",
        _loader("hfdata", "load_hf"), options=(
            Opt("dataset", str, "", "Hugging Face dataset id, e.g. 'cornell-movie-review-data/rotten_tomatoes'"),
            Opt("config", str, "", "dataset configuration, e.g. 'sst2' of 'nyu-mll/glue'"),
            Opt("path", str, "", "a folder written by Dataset(Dict).save_to_disk, instead of an id"),
            Opt("train_split", str, "train", "training split name"),
            Opt("val_split", str, "auto", "validation split: 'auto' (validation/valid/dev if present and "
                                           "labelled), a name, or '' to carve from train"),
            Opt("test_split", str, "auto", "test split: 'auto' (test if present and labelled), a name, or '' to "
                                            "carve from train"),
            Opt("text_column", str, "text", "text column"),
            Opt("label_column", str, "label", "label column"))))
