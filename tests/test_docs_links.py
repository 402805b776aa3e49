"""Every relative link of the README and docs/*.md points to a file that exists and, with a #fragment, to an anchor
in it (an explicit <a id>, or a heading's GitHub slug): the docs cite their numbers by such links."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def anchors(text: str) -> set:
    """The fragments a Markdown file answers to on GitHub: <a id/name> and heading slugs (lower case, punctuation
    but '-' and '_' dropped, spaces to '-', repeats suffixed -1, -2, ...)."""
    text = FENCE.sub("", text)
    out = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))
    seen: dict = {}
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", re.sub(r"<[^>]+>", "", m.group(1)))
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(md: Path) -> list:
    """(link, why) for each relative link of ``md`` (outside code blocks) that does not resolve."""
    bad = []
    for m in re.finditer(r"\]\(([^)\s]+)\)", FENCE.sub("", md.read_text(encoding="utf-8"))):
        link = m.group(1)
        if re.match(r"[a-zA-Z][a-zA-Z+.-]*:", link):  # http:, https:, mailto:
            continue
        path, _, fragment = link.partition("#")
        target = (md.parent / path) if path else md
        if not target.exists():
            bad.append((link, "no such file"))
        elif fragment and target.suffix == ".md" and fragment not in anchors(target.read_text(encoding="utf-8")):
            bad.append((link, f"no anchor #{fragment} in {target.name}"))
    return bad


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "b.md").write_text("# Results so far: the set (2026-12-02)\n\n<a id=\"pcb\"></a>\n## Same\n## Same\n")
    a = tmp_path / "a.md"
    a.write_text("[ok](b.md#results-so-far-the-set-2026-12-02) [ok](b.md#pcb) [ok](b.md#same-1)\n"
                 "[web](https://x.org/#y) [gone](c.md) [bad](b.md#nope) [self](#here)\n```\n[in code](d.md)\n```\n")
    assert broken_links(a) == [("c.md", "no such file"), ("b.md#nope", "no anchor #nope in b.md"),
                               ("#here", "no anchor #here in a.md")]


@pytest.mark.parametrize("md", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_links_resolve(md):
    assert broken_links(md) == []
