"""Read a fact: neurons, directions, attention knockout, superposition."""

from __future__ import annotations
