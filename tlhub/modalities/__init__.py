"""The built-in modalities, registered through the ``register_modalities`` hook like a plugin's
(``tlhub.plugins.builtins.modalities``): ``image`` and ``text``.

Built in rather than in the vision and text plugins because backbones of other plugins (the test kit's
tiny backbones, timm models, third-party ones) take images and text too, and an exported ONNX model
must be usable with tlhub alone. ``tlhub.modality`` is the interface these implement.
"""
