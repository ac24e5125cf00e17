"""`python -m monitors.migrations COMMAND`: see registry/migrate_cli.py."""

import sys

from monitors.migrations import MONITOR_MIGRATIONS
from registry.migrate_cli import main

if __name__ == "__main__":
    sys.exit(main(MONITOR_MIGRATIONS))
