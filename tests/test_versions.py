"""The target-version reader: config first, then the project's pins."""

from __future__ import annotations

import os

import pytest

from dllint import versions
from dllint.context import Context
from dllint.engine import parse
from dllint.versions import INF, newest_allowed, parse_version, target_version


@pytest.fixture(autouse=True)
def fresh_cache():
    versions._cache.clear()
    yield
    versions._cache.clear()


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("==4.30.2", (4, 30, 2)),
        (">=4.30", None),
        (">=4.0,<5", (4, INF)),
        ("<5.0.0", (4, INF)),
        ("<4.30", (4, 29, INF)),
        ("~=4.30", (4, INF)),
        ("~=4.30.1", (4, 30, INF)),
        ("==4.*", (4, INF)),
        ("!=4.31", None),
        ("<=2.5.1", (2, 5, 1)),
    ],
)
def test_newest_allowed(spec, expected):
    assert newest_allowed(spec) == expected


def test_parse_version():
    assert parse_version("2.6.0+cpu") == (2, 6, 0)
    assert parse_version("v5") == (5,)
    assert parse_version("latest") is None


def _project(tmp_path, files):
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (tmp_path / ".git").mkdir(exist_ok=True)
    source = tmp_path / "src" / "pkg" / "train.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("import transformers\n")
    return str(source)


def test_requirements_pin(tmp_path):
    path = _project(tmp_path, {"requirements.txt": "torch>=2.0\ntransformers==4.30.2  # pinned\n-r dev.txt\n"})
    assert target_version("transformers", {}, path) == (4, 30, 2)
    assert target_version("torch", {}, path) is None
    assert target_version("tensorflow", {}, path) is None


def test_config_wins_over_pins(tmp_path):
    path = _project(tmp_path, {"requirements.txt": "transformers==4.30.2\n"})
    assert target_version("transformers", {"transformers": "5.1"}, path) == (5, 1)


def test_pyproject_pep621_and_poetry(tmp_path):
    path = _project(
        tmp_path,
        {
            "pyproject.toml": (
                '[project]\nname = "x"\nrequires-python = ">=3.9"\n'
                'dependencies = ["transformers[torch]<5", "numpy"]\n'
                "[tool.poetry.dependencies]\ntorch = \"^2.1\"\n"
            )
        },
    )
    assert target_version("transformers", {}, path) == (4, INF)
    assert target_version("torch", {}, path) == (2, INF)


def test_setup_py_and_environment_yml(tmp_path):
    path = _project(
        tmp_path,
        {
            "setup.py": "from setuptools import setup\nsetup(install_requires=['transformers>=3,<4.0.0'])\n",
            "environment.yml": "dependencies:\n  - pytorch=1.13\n  - pip:\n    - tensorflow==2.4.1\n",
        },
    )
    assert target_version("transformers", {}, path) == (3, INF)
    assert target_version("pytorch", {}, path) == (1, 13)
    assert target_version("tensorflow", {}, path) == (2, 4, 1)


def test_nearest_folder_wins(tmp_path):
    path = _project(tmp_path, {"requirements.txt": "transformers==4.2\n", "src/pkg/requirements.txt": "transformers==5.0\n"})
    assert target_version("transformers", {}, path) == (5, 0)


def test_no_pins_is_unknown(tmp_path):
    path = _project(tmp_path, {})
    assert target_version("transformers", {}, path) is None
    assert target_version("transformers", {}, "<string>") is None


def test_context_asks_the_reader(tmp_path):
    path = _project(tmp_path, {"requirements.txt": "transformers==4.40.0\n"})
    text = "import transformers\n"
    ctx = Context(parse(text), text, path, {"torch": "2.5"})
    assert ctx.target_version("transformers") == (4, 40, 0)
    assert ctx.target_version("torch") == (2, 5)


def test_cache_key_follows_pins(tmp_path):
    from dllint.runner import Cache, Settings

    path = _project(tmp_path, {"requirements.txt": "transformers==4.40.0\n"})
    first = Cache.key(b"x", frozenset(), Settings(), "py", versions.pins_fingerprint(path))
    versions._cache.clear()
    (tmp_path / "requirements.txt").write_text("transformers==5.0\n")
    second = Cache.key(b"x", frozenset(), Settings(), "py", versions.pins_fingerprint(path))
    assert first != second
    assert os.path.exists(path)


def test_dockerfile_install_pins(tmp_path):
    path = _project(
        tmp_path,
        {"docker/pytorch.Dockerfile": "FROM ubuntu\nRUN pip install torch==1.8.1 torchvision==0.9.1 && \\\n    pip install numpy\n"},
    )
    assert target_version("torch", {}, path) == (1, 8, 1)
    assert target_version("pytorch", {}, path) == (1, 8, 1)  # one framework, two distribution names


def test_the_files_own_install_commands_come_last(tmp_path):
    path = _project(tmp_path, {})
    source = "import os\nos.system('pip install tensorflow-gpu==2.1.0')\nimport tensorflow as tf\n"
    assert target_version("tensorflow", {}, path, source) == (2, 1, 0)
    assert target_version("tensorflow", {"tensorflow": "2.21"}, path, source) == (2, 21)
    assert target_version("tensorflow", {}, path, "pip install tensorflow>=2.4\n") is None


def test_notebook_magics_count_as_install_commands(tmp_path):
    import json

    path = _project(tmp_path, {})
    notebook = tmp_path / "convert.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": ["!pip install tensorflow-gpu==2.1.0\n"]},
        {"cell_type": "code", "source": "import tensorflow as tf\n"},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert versions.notebook_code(str(notebook)).startswith("!pip install")
    text = "import tensorflow as tf\n"
    ctx = Context(parse(text), text, str(notebook))
    assert ctx.target_version("tensorflow") == (2, 1, 0)
    assert os.path.exists(path)
