"""The control plane's HTTP routes, thin over their stores: monitoring, feedback, tasks,
Alertmanager's webhook and the registry. The inference routes are `services.gateway.rest`."""
