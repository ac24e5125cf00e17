"""Load generators and benchmark scripts. They reach the gateway only over HTTP."""
