"""The file layer of a run: its directory and atomic writes, the run lock, write checks, the environment record.

Imports only ``tlhub.errors`` (and the version): every other folder may use it (the model folder's writer is
``tlhub.export``)."""
