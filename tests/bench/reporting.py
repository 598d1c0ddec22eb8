"""The benchmarks' one way to print a figure: a `BENCH name: k=v, …` line as it is
measured, and, at the end of the session, every line in one table with its target and
whether it was met (tests/bench/conftest.py)."""

REPORTED: list[tuple[str, dict]] = []


def report(name: str, **figures) -> None:
    REPORTED.append((name, figures))
    print(f"\nBENCH {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


VERDICTS = {"met", "missed", "MISSED", "n/a"}


def table() -> list[str]:
    """The reported figures as rows of text: measure | figures | target | result. A figure
    whose name starts with "target" is a target; one whose value is a verdict (met or
    missed) is a result, named unless it is the line's only `result`."""
    rows = [("measure", "figures", "target", "result")]
    for name, figures in REPORTED:
        targets = [f"{k}={v}" if k != "target" else str(v) for k, v in figures.items() if k.startswith("target")]
        results = [str(v) if k == "result" else f"{k}={v}" for k, v in figures.items() if str(v) in VERDICTS]
        shown = [f"{k}={v}" for k, v in figures.items() if not k.startswith("target") and str(v) not in VERDICTS]
        rows.append((name, ", ".join(shown), ", ".join(targets) or "—", ", ".join(results) or "—"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return lines
