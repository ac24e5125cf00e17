"""`python -m registry.migrations COMMAND`: see registry/migrate_cli.py."""

import sys

from registry.migrate_cli import main
from registry.migrations import REGISTRY_MIGRATIONS

if __name__ == "__main__":
    sys.exit(main(REGISTRY_MIGRATIONS))
