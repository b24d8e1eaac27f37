"""The metrics layer: what a run records (`recorder.py`, `level.py`), what it hands to
the analysis (`recording.py`) and the latency histograms' maths (`histogram.py`)."""
from .histogram import HIST_BINS, HIST_EDGES_S, LatencyBatch, hist_bin, hist_percentiles
from .level import Level, add_opposite
from .recorder import DB_LEVELS, SERVICE_COUNTERS, SERVICE_LEVELS, DatabaseSeries, Recorder, ServiceSeries, add_span
from .recording import Event, Recording, ServiceRecording

__all__ = [
    "DB_LEVELS", "HIST_BINS", "HIST_EDGES_S", "SERVICE_COUNTERS", "SERVICE_LEVELS", "DatabaseSeries",
    "Event", "LatencyBatch", "Level", "Recorder", "Recording", "ServiceRecording", "ServiceSeries", "add_opposite",
    "add_span", "hist_bin", "hist_percentiles",
]
