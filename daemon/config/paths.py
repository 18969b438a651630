"""Where podium keeps its data by default: cheap to import, for the CLI's start-up."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """PODIUM_DATA_DIR, else $XDG_DATA_HOME/podium, else ~/.local/share/podium."""
    if os.environ.get("PODIUM_DATA_DIR"):
        return Path(os.environ["PODIUM_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "podium"
