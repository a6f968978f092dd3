"""What a finished run exports: the model folder (safetensors + config.json) and the ONNX graph.

Above ``artifacts`` (the file layer), ``reporting`` (samples and pictures) and ``use`` (the ONNX
parity check loads the model back); the trainer and the CLI call it."""
