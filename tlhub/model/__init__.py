"""The trained model: backbone + head, how a phase freezes it, and the one place that assembles it."""
from __future__ import annotations

from tlhub.model.assemble import ModelSpec, add_head, backbone_layouts, build_backbone, build_model
from tlhub.model.freezing import (GroupLayout, GroupState, apply_phase, apply_states, format_audit, frozen_prefix, group_layouts,
                                  resolve_groups)
from tlhub.model.transfer import RAW, Entry, TransferModel

__all__ = ["RAW", "Entry", "GroupLayout", "GroupState", "ModelSpec", "TransferModel", "add_head", "apply_phase", "apply_states", "backbone_layouts",
           "build_backbone", "build_model", "format_audit", "frozen_prefix", "group_layouts", "resolve_groups"]
