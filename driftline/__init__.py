"""driftline's front door: CLI, settings and the wiring of sketches, streams and alerts."""

__version__ = "0.1.0"
