"""What one gateway process needs to live beside others: which worker it is (`slots`),
`/metrics` summed across the workers (`metrics`), and its monitoring child (`monitor`).
The supervisor that starts the workers, above the app, is `services.gateway.workers`."""
