"""Rewrite a fact: ROME, MEMIT, AlphaEdit and their CounterFact-style evaluation."""

from __future__ import annotations
