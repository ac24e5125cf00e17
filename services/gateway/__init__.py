"""The gateway: Open Inference Protocol over HTTP, adaptive batching, hot swaps."""
