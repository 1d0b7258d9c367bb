"""Progress of a co-simulation running in another process, on stderr (tqdm).

The cocotb testbench rewrites ``progress.json`` in its run directory
(``{"cycle": ..., "results": ..., "expected": ...}``, see :mod:`sim.cocotb_netrecord`);
:class:`SimProgress` polls it from a thread while the simulator runs and shows samples done
and simulated cycles. Like every progress display here it is off when stderr is not a
terminal (or with ``enabled=False``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

__all__ = ["SimProgress", "read_progress"]


def read_progress(path):
    """The dict in ``path``, or None while it is missing or being replaced."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class SimProgress:
    """Context manager: a tqdm bar of ``total`` samples fed from ``run_dir/progress.json``.

    Attributes after the block: ``elapsed`` (wall seconds) and ``last`` (the last dict read).
    """

    def __init__(self, run_dir, total, desc="co-simulation", enabled=True, interval=0.5,
                 unit="sample"):
        self.path = Path(run_dir) / "progress.json"
        self.total, self.desc, self.enabled = int(total), desc, enabled
        self.interval = interval
        self.unit = unit
        self.last = None
        self.elapsed = 0.0

    def __enter__(self):
        from tqdm import tqdm
        self.path.unlink(missing_ok=True)
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, file=sys.stderr,
                        disable=None if self.enabled else True, leave=False)
        self.done = threading.Event()
        self.thread = None
        if not self.bar.disable:
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _update(self):
        state = read_progress(self.path)
        if state is None:
            return
        self.last = state
        self.bar.n = min(int(state.get("results", 0)), self.total)
        self.bar.set_postfix_str(f"{int(state.get('cycle', 0)):,} cycles", refresh=False)
        self.bar.refresh()

    def _poll(self):
        while not self.done.wait(self.interval):
            self._update()

    def __exit__(self, *exc):
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if not self.bar.disable:
            self._update()
        self.last = read_progress(self.path) or self.last
        self.bar.close()
        self.elapsed = time.perf_counter() - self.t0
        return False
