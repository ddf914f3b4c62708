"""Dream fidelity: measured checks of whether a world model's dream matches the real game.

>>> from dreamgym.fidelity import FidelityReport
>>> report = FidelityReport("runs/doom/worldmodel", data="data/doom-heldout").run()
>>> print("\\n".join(report["verdicts"]))
"""

from dreamgym.fidelity.report import FidelityConfig, FidelityReport
from dreamgym.fidelity.summary import THRESHOLDS, verdicts

__all__ = ["THRESHOLDS", "FidelityConfig", "FidelityReport", "verdicts"]
