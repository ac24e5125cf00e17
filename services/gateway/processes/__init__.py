"""The gateway's processes: N workers on one port (`workers`, each knowing its `slots`),
`/metrics` summed across them (`metrics`), and the monitoring child (`monitor`)."""
