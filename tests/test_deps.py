"""j1core/deps.py: which of pyproject.toml's requirements the installed packages miss."""
from __future__ import annotations

import importlib.metadata

from j1core.deps import unmet_requirements


def write_project(tmp_path, dependencies, dev=()):
    quoted = lambda names: ", ".join(f'"{n}"' for n in names)  # noqa: E731
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[project]\nname = "x"\ndependencies = [{quoted(dependencies)}]\n'
                    f'[project.optional-dependencies]\ndev = [{quoted(dev)}]\n')
    return path


def test_reports_a_version_outside_the_range_and_a_missing_package(tmp_path):
    torch_version = importlib.metadata.version("torch").split("+")[0]
    path = write_project(tmp_path, [f"torch>={torch_version}", "numpy<1"], dev=["no-such-package-j1-test"])
    unmet = unmet_requirements(pyproject=path)
    assert len(unmet) == 2
    assert unmet[0].startswith("numpy<1: ") and "installed" in unmet[0]
    assert unmet[1] == "no-such-package-j1-test: not installed"
    assert unmet_requirements(extras=(), pyproject=path) == unmet[:1]


def test_the_project_requirements_are_met_after_make_install():
    assert unmet_requirements() == []
