"""The workers' shared load-failure reports: whole records from concurrent writers, the
exiting worker's own report preferred, emptied once read."""

from __future__ import annotations

import os

from starman.master.loadreport import LoadReport, LoadReports


def test_take_prefers_the_exiting_workers_report_and_empties_the_file() -> None:
    reports = LoadReports()
    try:
        assert reports.take(1) is None
        assert reports.write(LoadReport(11, "first", "Traceback ...\nValueError: x\n"))
        assert reports.write(LoadReport(12, "second"))
        assert reports.take(12) == LoadReport(12, "second")
        assert reports.take(12) is None  # emptied: the others said the same
        reports.write(LoadReport(13, "third"))
        reports.write(LoadReport(14, "fourth"))
        assert reports.take(99) == LoadReport(13, "third")
    finally:
        reports.close()


def test_records_from_forked_writers_stay_whole() -> None:
    reports = LoadReports()
    big = "x" * 100_000  # larger than a pipe's atomic write
    children = []
    try:
        for n in range(8):
            pid = os.fork()
            if pid == 0:
                ok = reports.write(LoadReport(os.getpid(), f"m{n}", big))
                os._exit(0 if ok else 1)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        got = reports.take(children[3])
        assert got is not None and got.pid == children[3] and got.details == big
    finally:
        reports.close()
