"""CI's skip check (.ci/check_skips.py): a skip the allow-list does not name fails the run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "check_skips.py"
_spec = importlib.util.spec_from_file_location("check_skips", SCRIPT)
check_skips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_skips)

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="3" tests="4">
  <testcase classname="tests.engine.test_kill" name="test_ran[postgresql]" time="1.0"/>
  <testcase classname="tests.engine.test_kill" name="test_racing[sqlite]" time="0.0">
    <skipped type="pytest.skip" message="the PostgreSQL deployment">skipped</skipped>
  </testcase>
  <testcase classname="tests.web.test_browser.TestPages" name="test_login" time="0.0">
    <skipped type="pytest.skip" message="browser tests skipped: Chromium not found">skipped</skipped>
  </testcase>
  <testcase classname="tests.api.test_db_faults" name="test_full_disk[sqlite]" time="0.0">
    <skipped type="pytest.skip" message="cannot mount a tiny filesystem here"/>
  </testcase>
</testsuite></testsuites>
"""
ALLOWED = """# comment lines and blank lines are ignored

tests/engine/test_kill.py::test_racing[sqlite]  # PostgreSQL only, rewritten elsewhere
tests/engine/test_kill.py::test_gone[sqlite]  # no longer skips
"""
EVERY_SKIP_ALLOWED = ALLOWED + ("tests/web/test_browser.py::TestPages::test_login  # x\n"
                                "tests/api/test_db_faults.py::test_full_disk[sqlite]  # y\n")


@pytest.fixture
def root(tmp_path) -> Path:
    """A checkout with the modules the report names."""
    for module in ("tests/engine/test_kill.py", "tests/web/test_browser.py", "tests/api/test_db_faults.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    return tmp_path


def test_a_skip_the_allow_list_does_not_name_fails_the_check_and_is_printed_with_its_message(root):
    passed, lines = check_skips.check(REPORT, ALLOWED, root)

    assert passed is False
    assert [line for line in lines if line.startswith("UNEXPECTED SKIP")] == [
        "UNEXPECTED SKIP: tests/web/test_browser.py::TestPages::test_login: browser tests skipped: Chromium not found",
        "UNEXPECTED SKIP: tests/api/test_db_faults.py::test_full_disk[sqlite]: cannot mount a tiny filesystem here",
    ]
    assert lines[0] == "tests run: 1, skipped: 3"
    assert "note: allowed skip did not happen (remove the line?): tests/engine/test_kill.py::test_gone[sqlite]" in lines


def test_only_allowed_skips_pass_the_check(root):
    passed, lines = check_skips.check(REPORT, EVERY_SKIP_ALLOWED, root)

    assert passed is True
    assert not [line for line in lines if line.startswith("UNEXPECTED")]


def test_a_report_where_no_test_ran_fails_the_check_even_with_every_skip_allowed(root):
    report = REPORT.replace('<testcase classname="tests.engine.test_kill" name="test_ran[postgresql]" time="1.0"/>', "")
    passed, lines = check_skips.check(report, EVERY_SKIP_ALLOWED, root)

    assert passed is False and "no test ran" in lines


def test_an_allow_list_entry_without_a_reason_is_refused():
    with pytest.raises(check_skips.AllowListError, match="line 2: tests/a.py::test_b has no reason"):
        check_skips.load_allowed("# header\ntests/a.py::test_b\n")


def test_the_script_exits_non_zero_on_an_unexpected_skip_and_zero_when_all_are_allowed(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    strict, lenient = tmp_path / "strict.txt", tmp_path / "lenient.txt"
    strict.write_text(ALLOWED)
    lenient.write_text(EVERY_SKIP_ALLOWED)

    failed = subprocess.run([sys.executable, str(SCRIPT), str(report), str(strict)], capture_output=True, text=True)
    ok = subprocess.run([sys.executable, str(SCRIPT), str(report), str(lenient)], capture_output=True, text=True)

    assert failed.returncode == 1
    assert "UNEXPECTED SKIP: tests/web/test_browser.py::TestPages::test_login" in failed.stdout
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_repository_allow_list_parses_and_names_only_tests_that_exist():
    allowed = check_skips.load_allowed((SCRIPT.parent / "allowed-skips.txt").read_text())

    for test_id in allowed:
        module = test_id.split("::", 1)[0]
        assert (SCRIPT.parents[1] / module).is_file(), test_id
