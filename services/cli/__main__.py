"""`python -m services.cli`, as the demo and the tests start a gateway."""

from services.cli.entry import main

main()
