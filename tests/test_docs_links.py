"""Every relative link in the README, CHANGELOG and docs/ names a file that exists and, with a ``#part``, a heading
in it (GitHub's anchor rule): a moved section or file fails here, not in a reader's browser."""

import re
from pathlib import Path

import pytest

from .conftest import REPO

PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(page: Path):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not checked here
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_reaches_its_file_and_heading(page):
    broken = []
    for target in links(page):
        path, _, part = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif part and file.suffix == ".md" and part not in anchors(file):
            broken.append(f"{target}: no heading #{part} in {file.relative_to(REPO)}")
    assert not broken, "\n".join(broken)


def test_the_anchor_rule_matches_githubs():
    page = REPO / "CHANGELOG.md"
    assert "gsm8k-with-the-tutorials-five-rewards-the-format-is-learned-the-maths-is-not" in anchors(page)
