"""One module per endpoint group; each parses, calls the service in a worker thread, renders."""
