"""The layering rules (pyproject.toml, `[tool.importlinter]`): a post travels sources ->
record -> transports -> lake -> kafka -> pipeline, the CLI on top, and no package imports one
above it; inside tootlake.kafka the producer and sink worker sit on the codec; only
tootlake.kafka imports confluent_kafka and fastavro. Run here so CI keeps them, not only
`make lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_follow_the_layers():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout
