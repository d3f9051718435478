"""The wheel installs one import name, `tierline`, with every package and data file in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "schemas": "tierline.schemas",
    "processors": "tierline.processors",
    "streams": "tierline.streams",
}


def source_packages() -> set[str]:
    """Every folder with an `__init__.py` under the three layers, under its installed name."""
    found = set()
    for folder, name in LAYERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_source_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == source_packages()
    assert config["package-dir"] == {name: folder for folder, name in LAYERS.items()}


_NOT_SOURCE = (".git", ".venv", ".tierline", "build", "*.egg-info", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    source = tmp_path_factory.mktemp("source") / "tierline"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE), symlinks=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    (built,) = out.glob("tierline-*.whl")
    yield built


def test_the_wheel_has_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"tierline"}
    assert not any(
        n.startswith(("tierline/tests", "tierline/deploy", "tierline/bench")) for n in names
    )


def test_the_wheel_carries_the_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "tierline/schemas/ddl/001_costs.sql",
        "tierline/schemas/jsonschema/tierline.requests.json",
        "tierline/processors/pricing/default_catalog.toml",
        "tierline/processors/pricing/prices/litellm_chat_prices.json",
        "tierline/processors/pricing/prices/LICENSE-litellm.txt",
        "tierline/streams/data/workload.jsonl",
    ):
        assert path in names, path
    entry = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    assert b"tierline = tierline.streams.cli:main" in entry


def test_installed_it_imports_as_tierline_and_not_as_schemas(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    # -S: no .pth files, so the editable install of this checkout is out of the way;
    # the dependencies come from this venv's site-packages, tierline from the wheel.
    path = os.pathsep.join([str(tmp_path / "site"), sysconfig.get_paths()["purelib"]])
    probe = (
        "import importlib.util, tierline.schemas, tierline.streams.cli\n"
        "from tierline.schemas.migrations import migrations\n"
        "from tierline.processors.pricing.catalog import default_catalog_config\n"
        "from tierline.processors.pricing.prices import bundled_price_book\n"
        "from tierline.streams.workload import load_workload\n"
        "print(tierline.schemas.__file__)\n"
        "print([n for n in ('schemas', 'processors', 'streams') if importlib.util.find_spec(n)])\n"
        # every bundled file is read through its installed package name
        "print(len(migrations()), len(default_catalog_config()['models']),\n"
        "      len(bundled_price_book()) > 100, len(load_workload()) > 100)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": path, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=True,
    )
    where, stray, bundled = done.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site" / "tierline" / "schemas"))
    assert stray == "[]"
    migrations, models, prices, workload = bundled.split()
    assert int(migrations) >= 4 and int(models) > 0
    assert prices == workload == "True"
