"""After the test run in CI: read pytest's junit XML and fail when no test ran, or when a
test skipped that .ci/allowed-skips.txt does not name (under CI=true an environment skip
is a failure: a green run must not hide tests that never ran).

Usage: python .ci/check_skips.py REPORT.xml ALLOWED.txt
Allow-list lines: a test id as pytest prints it (tests/x/test_y.py::test_z[param]), then
`# why it may skip`; blank lines and lines starting with # are ignored.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class AllowListError(ValueError):
    pass


def load_allowed(text: str) -> dict[str, str]:
    """Test id -> the reason it may skip. Every entry must say why."""
    allowed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition("#")
        if not reason.strip():
            raise AllowListError(f"line {number}: {test_id.strip()} has no reason (`# why it may skip`)")
        allowed[test_id.strip()] = reason.strip()
    return allowed


def test_id(classname: str, name: str, root: Path = ROOT) -> str:
    """pytest's test id from junit's dotted classname: the longest prefix that is a .py file
    under `root` is the module, the rest are classes (tests.a.test_b.TestC -> tests/a/test_b.py::TestC)."""
    if not classname:
        return name
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        module = "/".join(parts[:i]) + ".py"
        if (root / module).is_file():
            return "::".join([module, *parts[i:], name])
    return f"{classname}::{name}"


def read_report(xml_text: str, root: Path = ROOT) -> tuple[int, list[tuple[str, str]]]:
    """(tests that ran, [(test id, skip message)]) from a junit XML report."""
    tree = ET.fromstring(xml_text)
    ran, skipped = 0, []
    for case in tree.iter("testcase"):
        skip = case.find("skipped")
        if skip is None:
            ran += 1
        else:
            message = skip.get("message") or (skip.text or "").strip()
            skipped.append((test_id(case.get("classname", ""), case.get("name", ""), root), message))
    return ran, skipped


def check(xml_text: str, allowed_text: str, root: Path = ROOT) -> tuple[bool, list[str]]:
    """(passed, lines to print)."""
    allowed = load_allowed(allowed_text)
    ran, skipped = read_report(xml_text, root)
    lines = [f"tests run: {ran}, skipped: {len(skipped)}"]
    unexpected = [(tid, msg) for tid, msg in skipped if tid not in allowed]
    for tid, msg in unexpected:
        lines.append(f"UNEXPECTED SKIP: {tid}: {msg}")
    seen = {tid for tid, _ in skipped}
    for tid in sorted(set(allowed) - seen):  # not an error: the allow-list may shrink
        lines.append(f"note: allowed skip did not happen (remove the line?): {tid}")
    if ran == 0:
        lines.append("no test ran")
    if unexpected:
        lines.append(f"{len(unexpected)} test(s) skipped that .ci/allowed-skips.txt does not allow")
    return ran > 0 and not unexpected, lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report, allowed = (Path(a) for a in argv)
    try:
        passed, lines = check(report.read_text(), allowed.read_text())
    except (AllowListError, ET.ParseError, OSError) as exc:
        print(f"check_skips: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
