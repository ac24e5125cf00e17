"""Credit-risk demo: synthetic applications with a known ground truth, a network, a trainer."""
