"""The UI's third-party bundles (daemon/api/ui/static/*.bundle.js) are built from
daemon/api/ui/frontend/ by `make ui` and committed so that `make run` needs nothing but
Python. Each bundle's first line names the sha256 of the sources it was built from; these
tests recompute it, so a change of the front end's sources without a rebuild fails here,
and they run the build itself to a temporary folder to show the committed bundles are what
it makes."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.test_schema import ui_node_modules

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "daemon" / "api" / "ui" / "frontend"
STATIC = ROOT / "daemon" / "api" / "ui" / "static"
BUNDLES = {"codemirror": "src/codemirror.js", "charts": "src/charts.js"}


def sources_hash(entry: str) -> str:
    """As the front end's build.mjs computes it."""
    digest = hashlib.sha256()
    for name in ("build.mjs", "package-lock.json", entry):
        digest.update(name.encode() + b"\0")
        digest.update((UI / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_committed_bundle_was_built_from_the_current_sources(name: str) -> None:
    first = (STATIC / f"{name}.bundle.js").read_text().split("\n", 1)[0]
    found = re.fullmatch(r"// podium-bundle-sources: ([0-9a-f]{64})", first)
    assert found, f"{name}.bundle.js does not start with its sources' hash"
    assert found.group(1) == sources_hash(BUNDLES[name]), (
        f"daemon/api/ui/frontend changed since {name}.bundle.js was built: run `make ui` "
        "and commit the bundle"
    )


def test_the_build_makes_the_committed_bundles(tmp_path: Path) -> None:
    ui_node_modules()
    subprocess.run(["node", "build.mjs", str(tmp_path)], cwd=UI, check=True, timeout=300)
    for name in BUNDLES:
        fresh = (tmp_path / f"{name}.bundle.js").read_bytes()
        assert fresh == (STATIC / f"{name}.bundle.js").read_bytes(), (
            f"{name}: `make ui` makes another bundle than the one committed"
        )
