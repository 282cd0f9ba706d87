"""``python -m sessionkeeper``: the same as the ``sessionkeeper`` command."""

from sessionkeeper.cli.main import main

main()
