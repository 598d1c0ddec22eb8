"""`make bench` ends with one table of every figure measured, its target, met or missed."""

from tests.bench.reporting import REPORTED, table


def pytest_terminal_summary(terminalreporter) -> None:
    if not REPORTED:
        return
    terminalreporter.section("benchmark figures (issue 12 targets)")
    for line in table():
        terminalreporter.write_line(line)
