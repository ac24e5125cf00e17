"""What runs as a process: the `mlgate` CLI, the gateway, the retrainer and the demo."""
