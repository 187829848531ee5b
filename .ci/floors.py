"""Print a pip constraints file that pins every dependency in pyproject.toml to its declared floor.

CI installs with it to run the suite on the lowest versions netsynth claims to support (a lowest-direct
resolution: the direct dependencies at their floors, everything else resolved freely).
"""
import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
requirements = project["dependencies"] + [r for extra in project.get("optional-dependencies", {}).values() for r in extra]
for requirement in requirements:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+).*", requirement)
    if not match:
        sys.exit(f"pyproject.toml: dependency {requirement!r} has no '>=' floor")
    print(f"{match.group(1)}=={match.group(3)}")
