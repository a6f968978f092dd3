"""tlhub-vision: image backbones and image data sources for tlhub (entry point ``tlhub_vision.plugin``).

Importing this package is cheap: torch, torchvision and timm load only when a backbone is built
or a data source is loaded.
"""
__version__ = "0.1.0"
