"""What runs as a process: for now the `mlgate` CLI and its demo (the gateway comes next)."""
