"""What a version knows about its own quality: its problem, metrics with intervals, its
calibration, feature importances, and the baseline computed at registration."""
