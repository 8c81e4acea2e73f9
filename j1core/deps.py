"""Whether the installed packages satisfy pyproject.toml's requirements (and its dev extra).

    python -m j1core.deps && echo satisfied      # exit 1 and one line per unmet requirement otherwise

`make install` runs this before `pip install -e ".[dev]"`, so a machine whose packages drifted (a newer
transformers pulled in by another package, say) is brought back to what j1 is tested with instead of being
taken as installed because the modules import. Standard library plus `packaging` only: it runs before j1's
dependencies are installed.
"""
from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def unmet_requirements(extras=("dev",), pyproject=PYPROJECT) -> list[str]:
    """One line per requirement of `pyproject` (its dependencies plus `extras`) that the installed packages miss."""
    from packaging.requirements import Requirement

    project = tomllib.loads(Path(pyproject).read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    unmet = []
    for text in wanted:
        req = Requirement(text)
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(f"{text}: not installed")
            continue
        if installed not in req.specifier and not req.specifier.contains(installed, prereleases=True):
            unmet.append(f"{text}: {installed} installed")
    return unmet


def main() -> int:
    try:
        unmet = unmet_requirements()
    except ImportError as err:  # no `packaging` yet: nothing of j1's is installed
        print(f"j1 deps: {err}")
        return 1
    for line in unmet:
        print(f"j1 deps: {line}")
    return 1 if unmet else 0


if __name__ == "__main__":
    sys.exit(main())
