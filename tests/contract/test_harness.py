"""The test harness the suites rely on (tests/conftest.py), run in a scratch pytest:
unexpected warnings fail a test, ``allow_warnings`` opts out, the per-store tally is
printed, and a run where nothing ran is not a success."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parents[1] / "conftest.py").read_text()


@pytest.fixture
def scratch(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.mkpydir("tests")
    return pytester


def test_unexpected_warning_fails_and_allow_warnings_opts_out(scratch):
    scratch.makepyfile(
        test_logs="""
        import logging
        import pytest

        def test_warns():
            logging.getLogger("x").warning("disk on fire")

        def test_info_is_fine():
            logging.getLogger("x").info("all good")

        @pytest.mark.allow_warnings("on fire")
        def test_allowed():
            logging.getLogger("x").warning("disk on fire")

        @pytest.mark.allow_warnings("on fire")
        def test_other_warning_still_fails():
            logging.getLogger("x").error("something else")

        @pytest.mark.allow_warnings
        def test_allowed_all():
            logging.getLogger("x").error("anything")
        """
    )
    result = scratch.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*WARNING x: disk on fire*", "*ERROR x: something else*"])


def test_the_moto_servers_own_error_log_is_not_the_tests(scratch):
    """Seen in CI: moto answers an UploadPart to an unknown upload with a 500, and its
    werkzeug thread logs the traceback only after sending it, so the record could land
    in whichever test ran next (test_objects.py::test_put_get_head_round_trip failed
    so). The client sees that 500 anyway; the server's log is not the test's."""
    scratch.makepyfile(
        test_logs="""
        import logging

        def test_server_thread_logged():
            logging.getLogger("werkzeug").error("Error on request: KeyError")

        def test_ours_still_counts():
            logging.getLogger("mssfs.x").error("Error on request: KeyError")
        """
    )
    result = scratch.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)


def test_contract_tally_per_store(scratch):
    scratch.mkpydir("tests/contract")
    (scratch.path / "tests/contract/test_tally.py").write_text(
        "def test_one(store, store_kind):\n"
        "    s, bucket = store\n"
        "    assert store_kind == 'memory'\n"
        "    s.put_object(bucket, 'k', b'x')\n"
    )
    result = scratch.runpytest_subprocess("-p", "no:cacheprovider", "-k", "memory")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["contract: memory 1 passed"])


def test_a_run_where_nothing_ran_is_a_failure(scratch):
    scratch.makepyfile(
        test_skips="""
        import pytest

        def test_skipped():
            pytest.skip("not here")
        """
    )
    result = scratch.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_missing_prerequisite_fails_unless_allowed(scratch, monkeypatch):
    scratch.makepyfile(
        test_needs="""
        import conftest

        def test_needs_server():
            conftest.unavailable("no server here")
        """
    )
    result = scratch.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no server here (set MSSFS_ALLOW_SKIP=1 to skip instead)*"])
    monkeypatch.setenv("MSSFS_ALLOW_SKIP", "1")
    result = scratch.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
