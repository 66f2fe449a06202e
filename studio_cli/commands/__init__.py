"""The commands, one module per group. studio_cli.cli imports a module only when one of its commands runs, so
`--help` and argument errors need argparse alone (httpx and tqdm take a good part of a second to import)."""
