"""Training: the run, its phases, the frozen-prefix cache, checkpoints and the optimizer."""
