"""The ``sessionkeeper`` command line."""
