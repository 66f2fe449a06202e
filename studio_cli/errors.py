class CliError(Exception):
    """An expected failure: its message is printed without a traceback and the CLI exits 1."""
