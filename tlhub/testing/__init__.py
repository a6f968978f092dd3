"""Contract checks and tiny fixtures for plugin authors: call them from your own tests.

    from tlhub.testing import check_backbone

    def test_my_backbone():
        check_backbone("my-backbone")            # by registered name (the plugin must be installed)

Each check builds the component the way tlhub's trainer does (declared option defaults resolved,
then ``build``/``load``), exercises the contract, and raises ``AssertionError`` with a message that
names the component and says what is wrong. Each returns what it built, for further assertions.
"""
from __future__ import annotations

from tlhub.testing.components import check_data_source, check_freeze_policy, check_head
from tlhub.testing.fixtures import TinyImageSource, registered, tiny_image_data
from tlhub.testing.kit import (
           EXAMPLE_GROUPS,
           MODALITIES,
           TEXTS,
           check_backbone,
           check_options,
)

__all__ = ["check_backbone", "check_head", "check_freeze_policy", "check_data_source", "check_options",
           "registered", "tiny_image_data", "TinyImageSource", "EXAMPLE_GROUPS", "MODALITIES", "TEXTS"]
