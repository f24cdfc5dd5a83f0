"""The clone guard fails, naming the path, on everything that made a fresh clone depend on another machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUARD = ROOT / ".ci" / "clone_guard.py"


def _guard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GUARD), *args], capture_output=True, text=True, env=env)


def _repo(tmp_path: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for name, target in (links or {}).items():
        os.symlink(target, repo / name)
    # -f: a file .gitignore matches can only be tracked by forcing it, as it was the first time
    subprocess.run(["git", "-C", str(repo), "add", "-f", "."], check=True)
    return repo


def test_a_clean_repository_with_an_inward_link_passes(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"a/b.txt": "x", ".gitignore": ".venv\n"}, {"link": "a/b.txt"})
    result = _guard("tree", "--repo", str(repo))
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("target", ["/tmp/focus-venv", "../elsewhere", "a/../../elsewhere"])
def test_a_tracked_symlink_leaving_the_repository_fails_naming_it(tmp_path: Path, target: str) -> None:
    repo = _repo(tmp_path, {"a/b.txt": "x"}, {".focus-venv": target})
    result = _guard("tree", "--repo", str(repo))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"clone guard: .focus-venv: tracked symlink points outside the repository ({target})"
    ]


@pytest.mark.parametrize(
    ("ignore", "tracked"), [(".focus-venv", ".focus-venv"), ("*.tmp", "sub/x.tmp"), ("/data", "data/w.duckdb")]
)
def test_a_tracked_path_that_gitignore_ignores_fails_naming_it(tmp_path: Path, ignore: str, tracked: str) -> None:
    repo = _repo(tmp_path, {".gitignore": f"{ignore}\n", tracked: "x"})
    result = _guard("tree", "--repo", str(repo))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"clone guard: {tracked}: tracked, but .gitignore says to ignore it"]


def test_this_clone_passes_both_checks() -> None:
    assert _guard("tree").stderr == ""
    result = _guard("build")
    assert (result.returncode, result.stderr) == (0, "")


def _venv(repo: Path, home: Path) -> Path:
    venv = repo / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {home}\ninclude-system-site-packages = false\n")
    return venv


def test_a_virtualenv_on_an_interpreter_outside_the_system_fails(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    elsewhere = tmp_path / "someones-python" / "bin"
    elsewhere.mkdir(parents=True)
    venv = _venv(repo, elsewhere)
    result = _guard("build", "--repo", str(repo), "--venv", str(venv))
    assert result.returncode == 1
    assert f"{venv / 'pyvenv.cfg'}: its interpreter {elsewhere} is not a system Python" in result.stderr


@pytest.mark.parametrize("kind", ["link", "pth", "editable", "direct_url", "venv_link"])
def test_a_virtualenv_reading_outside_the_clone_fails_naming_the_path(tmp_path: Path, kind: str) -> None:
    repo = tmp_path / "repo"
    other = tmp_path / "other-checkout"
    other.mkdir()
    venv = _venv(repo, Path(sys.base_prefix) / "bin")
    site = next(venv.glob("lib/python*/site-packages"))
    named = {
        "link": venv / "bin" / "python",
        "pth": site / "extra.pth",
        "editable": site / "__editable___gpuledger_0_1_0_finder.py",
        "direct_url": site / "gpuledger-0.1.0.dist-info" / "direct_url.json",
        "venv_link": venv,
    }[kind]
    named.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link":
        os.symlink(other, named)
    elif kind == "pth":
        named.write_text(f"import sys\n{other}\n")
    elif kind == "editable":
        named.write_text(f"MAPPING = {{'core': '{repo / 'core'}', 'app': '{other / 'app'}'}}\n")
    elif kind == "direct_url":
        named.write_text(f'{{"url": "file://{other}", "dir_info": {{"editable": true}}}}')
    else:
        os.rename(venv, tmp_path / "real-venv")
        os.symlink(tmp_path / "real-venv", venv)
    result = _guard("build", "--repo", str(repo), "--venv", str(venv))
    assert result.returncode == 1
    assert result.stderr.count("clone guard: ") == 1
    assert result.stderr.startswith(f"clone guard: {named}")


def test_a_pythonpath_outside_the_clone_fails(tmp_path: Path) -> None:
    result = _guard("build", env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert f"clone guard: PYTHONPATH: {tmp_path} is outside the clone" in result.stderr
