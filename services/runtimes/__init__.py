"""Runtimes behind one small async interface: onnxruntime and TorchScript."""

from services.runtimes.base import Runtime, RuntimeSettings, Tensors

__all__ = ["Runtime", "RuntimeSettings", "Tensors"]
