"""Demo models, each with a data generator and a trainer entrypoint recorded in lineage."""
