"""``tlhub serve``: a trained model behind an HTTP API (FastAPI + uvicorn) with a page to try it.

Layers, outer to inner: ``app`` (routes, errors as JSON) -> ``inputs`` (request bodies to model
inputs, one decoder per modality) -> ``batcher`` (concurrent requests gathered into one forward
pass) -> ``engine`` (the PyTorch or ONNX Runtime predictor of ``tlhub.use``).
Nothing here imports FastAPI or torch at import time of this package.
"""
