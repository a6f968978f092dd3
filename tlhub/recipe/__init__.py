"""Recipes: the TOML schema, loading with overrides, validation, and the run plan built from them."""
from __future__ import annotations

from tlhub.recipe.schema import (
                                 BN_MODES,
                                 SECTIONS,
                                 AugmentCfg,
                                 DataCfg,
                                 EvalCfg,
                                 ModelCfg,
                                 OutputCfg,
                                 PhaseCfg,
                                 Recipe,
                                 TestSourceCfg,
                                 TrainCfg,
                                 apply_overrides,
                                 load_recipe,
                                 load_toml,
                                 parse_recipe,
                                 parse_value,
                                 to_toml,
)
from tlhub.recipe.validate import Checked, check, load_and_check, load_and_validate, validate

__all__ = ["BN_MODES", "Checked", "check", "load_and_check", "SECTIONS", "AugmentCfg", "DataCfg", "EvalCfg", "ModelCfg", "OutputCfg", "PhaseCfg", "Recipe",
           "TestSourceCfg", "TrainCfg", "apply_overrides", "load_and_validate", "load_recipe", "load_toml",
           "parse_recipe", "parse_value", "to_toml", "validate"]
