"""What monitoring publishes and reads back as metrics.

`collectors` holds the Prometheus collectors the gateway exposes (request, batch, drift,
quality and task series); `reading` reads a Prometheus server's range queries back, and
`history` (with `history_quality`) turns them into the model history that `mlgate history`
and the dashboard show.
"""
