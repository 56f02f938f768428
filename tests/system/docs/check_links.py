"""Every relative link of the project's markdown points to a file that exists, and every
#anchor into a markdown file to one of its headings (GitHub's rule for heading ids).

usage: check_links.py SOURCE_DIR
Checks README.md, docs/*.md, bench/README.md, bench/results/**/*.md and jobs/README.md.
Links to web addresses (scheme:...) are not followed. Code (fenced blocks, lines indented by
four spaces, `inline code`) is skipped. Prints one line per broken link; exit 1 if any.
"""

import glob
import os
import re
import sys

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+).*?\1")


def prose_lines(path, keep_code=False):
    """(line number, text) of the lines outside code blocks, inline code blanked unless
    keep_code."""
    fence = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            stripped = line.lstrip()
            marker = re.match(r"(`{3,}|~{3,})", stripped)
            if fence:
                if marker and stripped.startswith(fence):
                    fence = None
                continue
            if marker and len(line) - len(stripped) < 4:
                fence = marker.group(1)
                continue
            if line.startswith("    ") or line.startswith("\t"):
                continue
            yield number, line if keep_code else INLINE_CODE.sub("", line)


def slug(text):
    """GitHub's id of a heading: lower case, markup and punctuation dropped, blanks to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    """The ids of the headings of a markdown file."""
    if path not in cache:
        ids, seen = set(), {}
        for _, line in prose_lines(path, keep_code=True):
            match = HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            ids.add(base if count == 0 else f"{base}-{count}")
        cache[path] = ids
    return cache[path]


def check(path, root):
    """Messages for the broken links of one file."""
    problems = []
    for number, line in prose_lines(path):
        targets = [m.group(1) for m in LINK.finditer(line)]
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                continue  # http:, https:, mailto: ...
            file_part, _, fragment = target.partition("#")
            if file_part.startswith("/"):
                resolved = os.path.join(root, file_part.lstrip("/"))
            elif file_part:
                resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
            else:
                resolved = path
            where = f"{os.path.relpath(path, root)}:{number}"
            if not os.path.exists(resolved):
                problems.append(f"{where}: {target}: no such file")
            elif fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
                problems.append(f"{where}: {target}: no heading with id '{fragment}' in "
                                f"{os.path.relpath(resolved, root)}")
    return problems


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} SOURCE_DIR", file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1])
    files = [os.path.join(root, "README.md"), os.path.join(root, "bench", "README.md"),
             os.path.join(root, "jobs", "README.md")]
    files += sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    files += sorted(glob.glob(os.path.join(root, "bench", "results", "**", "*.md"),
                              recursive=True))
    files = [f for f in files if os.path.exists(f)]
    problems = [p for f in files for p in check(f, root)]
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{'FAIL' if problems else 'ok  '} {len(problems)} broken link(s) in {len(files)} "
          f"markdown files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
