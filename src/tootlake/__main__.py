from tootlake.cli import entry

entry()
