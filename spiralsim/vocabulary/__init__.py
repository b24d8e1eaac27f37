"""The words every layer shares, one table per concept: failure kinds, autoscaler
signals, the counters of what goes wrong in transactions, and event kinds.

The bottom floor of the house: it imports nothing of spiralsim, so the scenario
models, the model, the recording, the analysis and the report all read the same
rows. Adding a failure kind, a signal, a trouble counter or an event kind is one
row here (and its behaviour where it happens).
"""
from .events import EVENT_KINDS, EventKind
from .failures import FAILURE_KINDS, KIND_INDEX, REFUSED_AT_ONCE, FailureKind
from .signals import SIGNALS, Signal
from .trouble import TROUBLE, TROUBLE_COUNTERS, Trouble

__all__ = [
    "EVENT_KINDS", "EventKind", "FAILURE_KINDS", "KIND_INDEX", "FailureKind", "REFUSED_AT_ONCE",
    "SIGNALS", "Signal", "TROUBLE", "TROUBLE_COUNTERS", "Trouble",
]
