"""A compute-bound model for batching benchmarks: wide layers, where batch 64 is much
cheaper per row than batch 1 (the weights are read once per batch, not once per row)."""
