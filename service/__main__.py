import sys

from service.cli import main

# Guarded: the heavy-answer workers (service.cache) are spawned processes, which import the
# main module again; unguarded, each would start the CLI (a second server) instead of working.
if __name__ == "__main__":
    sys.exit(main())
