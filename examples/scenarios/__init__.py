"""Generated sensor data with a known ground truth, for binary, 3-class and regression
models: covariate drift that does not matter, and a change of the label relation that does."""
