"""``python -m sessionkeeper.cli`` (what tests use to start real server processes)."""

from sessionkeeper.cli.main import main

main()
