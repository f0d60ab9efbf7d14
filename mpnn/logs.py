"""Console output of the command-line tools: every line once, no advertisements, no noise.

Lightning attaches its own console handler to the `lightning` logger; under Hydra, which also
logs the root logger to the console and to the run's log file, every Lightning line would appear
twice. Lightning's lines go through the root logger's handlers only, its "Tip" lines (which
advertise Lightning's cloud services) are dropped, and a deprecation warning that Lightning's
pytree helper triggers on every run (not ours to fix) is silenced.
"""

from __future__ import annotations

import logging
import warnings


class _NoAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def quiet_logs() -> None:
    """Route Lightning's log lines to the root handlers only, without its advertisements."""
    import lightning  # noqa: F401  (importing it adds its handler, which is removed here)

    package = logging.getLogger("lightning")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):  # each may own a console handler
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    handlers = logging.getLogger().handlers
    if not handlers:  # no Hydra job logging: one plain console handler for Lightning's lines
        handlers = [logging.StreamHandler()]
        handlers[0].setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        package.addHandler(handlers[0])
        package.propagate = False
    for handler in handlers:  # a handler's filter sees propagated records; a logger's would not
        if not any(isinstance(f, _NoAdvertisements) for f in handler.filters):
            handler.addFilter(_NoAdvertisements())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
