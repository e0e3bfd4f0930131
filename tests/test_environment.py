"""pyproject.toml, environment.yml and constraints.txt describe the same environment."""

import re

import tomllib
import yaml
from packaging.requirements import Requirement

from labutils.paths import ROOT

# conda-forge name -> PyPI name: the light "-base" packages leave out optional extras
CONDA_NAMES = {"pytorch": "torch", "pysoundfile": "soundfile", "mne-base": "mne",
               "matplotlib-base": "matplotlib"}


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values()
                                      for r in extra]
    return {Requirement(r).name: str(Requirement(r).specifier) for r in reqs}


def _conda() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for dep in env["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            if spec.startswith("--") or spec in {"pip"} or spec.startswith("python"):
                continue
            req = Requirement(spec)
            found[CONDA_NAMES.get(req.name, req.name)] = str(req.specifier)
    return found


def test_environment_yml_agrees_with_pyproject():
    assert _conda() == _pyproject()


def test_pyproject_has_lower_bounds_only():
    for name, spec in _pyproject().items():
        assert re.fullmatch(r">=[\d.]+", spec), f"{name}{spec}: use a lower bound only"


def test_constraints_pin_every_dependency_and_torch():
    pins = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    pins = {Requirement(k).name: v for k, v in pins.items()}
    missing = set(_pyproject()) - set(pins)
    assert not missing, f"constraints.txt lacks {missing}"
    assert pins["torch"] == "2.13.0"


def test_conda_uses_the_light_packages():
    names = {Requirement(d).name for d in yaml.safe_load((ROOT / "environment.yml").read_text())
             ["dependencies"] if isinstance(d, str)}
    assert {"mne-base", "matplotlib-base"} <= names and not {"mne", "matplotlib"} & names
