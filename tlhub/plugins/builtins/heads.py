"""Built-in heads: ``linear`` and ``mlp`` (the seeds' Dense(128, relu) + Dropout(0.5) + Dense(n))."""
from __future__ import annotations

from tlhub.hookspecs import hookimpl
from tlhub.options import Opt
from tlhub.registry import HeadSpec

ACTIVATIONS = ("relu", "gelu", "tanh", "silu")


def _dropout_ok(p: float) -> str:
    return "" if 0 <= p < 1 else "must be in [0, 1)"


def _widths_ok(widths: list) -> str:
    good = all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 1 << 20 for w in widths)
    return "" if good else "must be a list of layer widths, integers from 1 to 1048576"


def build_linear(in_features: int, num_classes: int, options: dict):
    from torch import nn
    layers = [nn.Dropout(options["dropout"])] if options["dropout"] > 0 else []
    return nn.Sequential(*layers, nn.Linear(in_features, num_classes))


def build_mlp(in_features: int, num_classes: int, options: dict):
    from torch import nn
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[options["activation"]]
    layers, width = [], in_features
    for hidden in options["hidden"]:
        layers += [nn.Linear(width, int(hidden)), act()]
        if options["dropout"] > 0:
            layers.append(nn.Dropout(options["dropout"]))
        width = int(hidden)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@hookimpl
def register_heads(register):
    register(HeadSpec("linear", "one linear layer on the pooled features (optional dropout before it)",
                      build_linear, options=(Opt("dropout", float, 0.0, "dropout before the layer",
                                                   check=_dropout_ok),)))
    register(HeadSpec("mlp", "hidden dense layers with an activation and dropout, then a linear layer",
                      build_mlp, options=(
                          Opt("hidden", list, [128], "hidden layer widths", check=_widths_ok),
                          Opt("activation", str, "relu", "activation", choices=ACTIVATIONS),
                          Opt("dropout", float, 0.5, "dropout after each hidden layer", check=_dropout_ok))))
