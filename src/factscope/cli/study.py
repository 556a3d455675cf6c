"""Study facts at scale: datasets, know, probe, trace-many (resumable sweeps)."""

from __future__ import annotations
