#!/usr/bin/env python3
"""Fail, naming the path, when a clone depends on something outside itself.

A fresh clone must build and test with nothing but the system's Python, Debian's packages and the
package registries. The last time that broke, a tracked symlink pointed at a directory in /tmp that
existed only on the machine that ran CI, and `.gitignore` (with a trailing slash) matched only
directories, so it never caught the link. Two checks keep that class of mistake out:

- ``tree`` (before anything is built): no tracked symlink leaves the repository, and no tracked path
  is one `.gitignore` says to ignore;
- ``build`` (after the virtualenvs are made): every virtualenv in the clone is a real directory inside
  it, its interpreter is a system one, and every link, ``.pth`` entry, editable-install mapping and
  ``direct_url.json`` in it resolves inside the clone or to a system location; ``PYTHONPATH`` names
  nothing outside the clone.

Standard library only, so it runs before the project's own virtualenv exists.
Usage: ``clone_guard.py tree|build [--repo DIR] [--venv DIR ...]``; exit 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

VENVS = (".venv", ".focus-venv")
# Where a system Python and Debian's packages live; pyenv's interpreters count as the system's Python.
SYSTEM_ROOTS = ("/usr", "/bin", "/lib", "/lib64", "/etc")
ABSOLUTE_PATH = re.compile(r"""['"](/[^'"\n]+)['"]""")


def system_roots() -> list[Path]:
    roots = [Path(r) for r in SYSTEM_ROOTS]
    pyenv = os.environ.get("PYENV_ROOT")
    if pyenv:
        roots.append(Path(pyenv) / "versions")
    base = Path(sys.base_prefix)
    roots.append(base.parent if base.parent.name == "versions" else base)  # every pyenv interpreter, not one
    return [r.resolve() for r in roots]


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def git_lines(repo: Path, *args: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout
    return [line for line in out.split("\0") if line]


def outward_links(repo: Path) -> Iterator[str]:
    """Tracked symlinks (mode 120000) whose target is absolute or resolves outside the repository."""
    for entry in git_lines(repo, "ls-files", "-s", "-z"):
        meta, path = entry.split("\t", 1)
        if not meta.startswith("120000 "):
            continue
        blob = meta.split()[1]
        target = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "blob", blob], capture_output=True, text=True, check=True
        ).stdout
        resolved = (repo / path).parent.joinpath(target).resolve()
        if os.path.isabs(target) or not inside(resolved, [repo]):
            yield f"{path}: tracked symlink points outside the repository ({target})"


def ignored_but_tracked(repo: Path) -> Iterator[str]:
    for path in git_lines(repo, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard"):
        yield f"{path}: tracked, but .gitignore says to ignore it"


def check_tree(repo: Path) -> list[str]:
    return [*outward_links(repo), *ignored_but_tracked(repo)]


def _venv_links(venv: Path, allowed: list[Path]) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(venv):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not inside(path.resolve(), allowed):
                yield f"{path}: link to {os.readlink(path)}, outside the clone and the system's Python"


def _venv_references(venv: Path, allowed: list[Path]) -> Iterator[str]:
    """Paths that site-packages will read: .pth lines, editable finders' mappings, direct_url.json."""
    for site in venv.glob("lib/python*/site-packages"):
        for pth in site.glob("*.pth"):
            for line in pth.read_text(errors="replace").splitlines():
                entry = line.strip()
                if (
                    entry
                    and not line.startswith(("#", "import ", "import\t"))
                    and not inside((site / entry).resolve(), allowed)
                ):
                    yield f"{pth}: adds {entry} to the import path, outside the clone"
        for finder in site.glob("__editable__*.py"):
            for ref in ABSOLUTE_PATH.findall(finder.read_text(errors="replace")):
                if not inside(Path(ref).resolve(), allowed):
                    yield f"{finder}: maps a package to {ref}, outside the clone"
        for direct in site.glob("*.dist-info/direct_url.json"):
            url = json.loads(direct.read_text()).get("url", "")
            if url.startswith("file://") and not inside(Path(url[len("file://") :]).resolve(), allowed):
                yield f"{direct}: installed from {url}, outside the clone"


def _venv_home(venv: Path, roots: list[Path]) -> Iterator[str]:
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        yield f"{venv}: no pyvenv.cfg, not a virtualenv made by the build"
        return
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and not inside(Path(value.strip()).resolve(), roots):
            yield f"{cfg}: its interpreter {value.strip()} is not a system Python"


def check_build(repo: Path, venvs: list[Path]) -> list[str]:
    roots = system_roots()
    allowed = [repo, *roots]
    problems: list[str] = []
    for venv in venvs:
        if venv.is_symlink() or not inside(venv.resolve(), [repo]):
            problems.append(f"{venv}: the virtualenv is not a directory inside the clone")
            continue
        if venv.is_dir():
            problems += [*_venv_home(venv, roots), *_venv_links(venv, allowed), *_venv_references(venv, allowed)]
    for entry in filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if not inside(Path(entry).resolve(), allowed):
            problems.append(f"PYTHONPATH: {entry} is outside the clone")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=("tree", "build"))
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument(
        "--venv", type=Path, action="append", help="a virtualenv to check (default: .venv, .focus-venv)"
    )
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if args.check == "tree":
        problems = check_tree(repo)
    else:
        problems = check_build(repo, args.venv or [repo / v for v in VENVS if os.path.lexists(repo / v)])
    for problem in problems:
        print(f"clone guard: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
