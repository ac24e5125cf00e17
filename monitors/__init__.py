"""Monitoring: Prometheus collectors, the inference log, drift on bounded windows.

Imports `registry` only, never `services`.
"""
