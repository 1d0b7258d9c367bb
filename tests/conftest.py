"""Print the co-simulation totals of this run (values compared RTL vs golden) in the summary."""

import time

_START = time.time()


def pytest_terminal_summary(terminalreporter):
    from sim.tally import summarize, tally_dir
    if not tally_dir().exists():
        return
    total = summarize(since=_START - 1)
    if not total["tests"]:
        return
    terminalreporter.write_sep("-", "RTL vs golden co-simulation totals (sim.tally)")
    terminalreporter.write_line(
        f"{total['compared']:,} values compared in {total['tests']} co-simulations "
        f"({total['cycles']:,} cycles): {total['mismatches']} mismatches; cocotb "
        f"{total['cocotb_compared']:,}, fast path {total['fast_compared']:,}, gate-level "
        f"{total['netlist_compared']:,}, CLI {total['cli_compared']:,}")
