"""Adaptive batching for one model version: the queue and its dispatch (`batcher`), who may
join it (`admission`), running a batch (`execution`), and the cost model (`costmodel`) with
what it predicts (`forecast`). `types` is their shared vocabulary."""
