"""Every code example in README.md and docs/*.md runs as written.

The convention (the docs' own "About the examples" says it for readers): a
```python fence is a complete program; it is run here in a fresh interpreter,
its working directory an empty temporary one, with the checkout importable
and a time limit, and must exit 0. A fence that is not a whole program is
still ```python, but its first line is a comment ``# fragment: <what it
needs>``; it is not run. Shell sessions are ```sh or ```console and other
languages are named as they are. A program that needs Redis reads its URL
from ``REDIS_URL``, which the test sets to a throwaway redis-server of its
own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = re.compile(r"#\s*fragment\b")
#: A marked fragment says what it needs: ``# fragment: inside a Flask app``.
FRAGMENT_WITH_REASON = re.compile(r"#\s*fragment:\s*\S")
#: Fence info strings that are Python under another spelling, which the
#: runner would not see: examples must use ```python.
OTHER_PYTHON = re.compile(r"^(py|py3|python3|pycon|ipython|\{code-block\}\s+python|\{code\}\s+python)\b", re.I)
SECONDS = 60


@dataclass(frozen=True)
class Fence:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def is_fragment(self) -> bool:
        first = self.code.lstrip("\n").splitlines()[0] if self.code.strip() else ""
        return bool(FRAGMENT.match(first))


_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fences(path: Path) -> list[Fence]:
    """The fenced code blocks of a Markdown file, with their indentation
    (a fence inside a list item) removed. An unclosed fence is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Fence] = []
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        body: list[str] = []
        j = i + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: fence never closed")
        found.append(Fence(path, i + 1, info, "\n".join(body) + "\n"))
        i = j + 1
    return found


ALL_FENCES = [fence for path in DOC_FILES for fence in fences(path)]
PYTHON = [fence for fence in ALL_FENCES if fence.info == "python"]
RUNNABLE = [fence for fence in PYTHON if not fence.is_fragment]


def test_every_python_example_is_run_or_marked_as_a_fragment() -> None:
    hidden = [f"{fence.id} ({fence.info})" for fence in ALL_FENCES if OTHER_PYTHON.match(fence.info)]
    assert hidden == [], "Python examples must be ```python fences, run or marked"
    unexplained = [
        fence.id
        for fence in PYTHON
        if fence.is_fragment and not FRAGMENT_WITH_REASON.match(fence.code.lstrip("\n").splitlines()[0])
    ]
    assert unexplained == [], "a fragment's first line says what it needs: '# fragment: ...'"
    unnamed = [fence.id for fence in ALL_FENCES if not fence.info]
    assert unnamed == [], "every fence names its language (python, sh, console, text, ...)"


#: The pages of the site (docs/index.md's table of contents links them).
PAGES = (
    "index", "getting-started", "where-receivers-run", "timeouts", "cycle-guard", "errors", "history",
    "worker-queue", "settings", "typed-events", "waiting", "testing", "migrating-from-blinker", "flask",
    "django", "redis", "performance", "api", "changelog",
)  # fmt: skip


def test_the_runner_sees_every_page_and_the_readme() -> None:
    names = {path.name for path in DOC_FILES}
    assert {"README.md", *(f"{page}.md" for page in PAGES)} <= names
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert [page for page in PAGES if page != "index" and f"\n{page}\n" not in index] == []
    # Every page but the changelog (which includes ../CHANGELOG.md) has content of its own.
    thin = [
        page for page in PAGES if page != "changelog" and len((ROOT / "docs" / f"{page}.md").read_text().split()) < 150
    ]
    assert thin == []
    assert "{include} ../CHANGELOG.md" in (ROOT / "docs" / "changelog.md").read_text()
    assert (ROOT / "CHANGELOG.md").is_file()
    readme = [fence for fence in PYTHON if fence.path.name == "README.md"]
    assert readme, "the README has a Python example"
    assert not readme[0].is_fragment, "the README's first Python example is a whole program"


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readmes_links_to_files_resolve() -> None:
    # Sphinx checks the links between the docs pages; the README is not on
    # the site, so its links into the checkout (docs/<page>.md, LICENSE) are
    # checked here.
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    for fence in fences(readme):  # links inside examples are not links
        text = text.replace(fence.code, "")
    targets = {link.split("#")[0] for link in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", link)}
    assert targets, "the README links to the docs pages"
    assert sorted(target for target in targets if not (ROOT / target).exists()) == []


def test_fences_are_parsed_exactly(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nprint(1)\n```\n\n- item\n\n  ```python\n  # fragment: in a list\n  x\n  ```\n\n"
        "````markdown\n```python\nnot separate\n```\n````\n"
    )
    parsed = fences(page)
    assert [(f.line, f.info, f.code, f.is_fragment) for f in parsed] == [
        (3, "python", "print(1)\n", False),
        (9, "python", "# fragment: in a list\nx\n", True),
        (14, "markdown", "```python\nnot separate\n```\n", False),
    ]
    page.write_text("```python\nprint(1)\n")
    with pytest.raises(AssertionError, match="never closed"):
        fences(page)


@pytest.mark.parametrize("fence", RUNNABLE, ids=[fence.id for fence in RUNNABLE])
def test_example_runs(fence: Fence, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    script = tmp_path / "example.py"
    script.write_text(fence.code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if "REDIS_URL" in fence.code:
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{fence.id} ran past {SECONDS} s")
    assert done.returncode == 0, f"{fence.id} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
