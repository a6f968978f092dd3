"""tlhub-text: BERT-family text backbones and text data sources for tlhub (entry point ``tlhub_text.plugin``).

Importing this package is cheap: torch, transformers and datasets load only when a backbone is
built or a data source is loaded.
"""
__version__ = "0.1.0"
