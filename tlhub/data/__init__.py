"""Data: load a source, carve the missing splits, and turn items into tensors for a backbone."""
