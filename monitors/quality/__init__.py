"""Live model quality: realised from labels, estimated before they arrive, data quality,
and the policy that turns evidence of harm into a retraining task."""
