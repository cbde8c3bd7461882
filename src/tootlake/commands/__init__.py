"""CLI commands of the later pipeline stages.

Each module registers itself on `tootlake.cli.main` when imported.
"""
