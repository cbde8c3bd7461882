"""The talk's client, Mastodon.py 1.8.0 (as its requirements pin it), for the baselines.

It is unpacked from its wheel into bench/data/vendor/mastodon-1.8.0 and put on the baseline
processes' PYTHONPATH, so the project's own environment keeps a current Mastodon.py (the
tests show Mastodon.py 2.x streams from the simulator) while the benchmarks run the talk's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.8.0"
VENDOR = Path(__file__).resolve().parent / "data" / "vendor" / f"mastodon-{VERSION}"


def ensure_talk_mastodon() -> Path:
    """The folder holding Mastodon.py 1.8.0 (downloaded from PyPI once)."""
    if (VENDOR / "mastodon").exists():
        return VENDOR
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp,
             f"Mastodon.py=={VERSION}"],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("*.whl")
        VENDOR.parent.mkdir(parents=True, exist_ok=True)
        partial = VENDOR.with_name(VENDOR.name + ".partial")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)
        partial.rename(VENDOR)
    return VENDOR


if __name__ == "__main__":
    print(ensure_talk_mastodon())
