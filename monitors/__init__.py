"""Monitoring, in rooms by concern: the inference log (`log/`), drift (`drift/`), retraining
tasks and the alerts that open them (`tasks/`), labels and live quality (`quality/`), and
what is published as metrics (`metrics/`); `loop` and `monitor` run a version's round over
them, on the tables of `schema`.

Imports `registry` only, never `services`.
"""
