"""See it: the story of one fact in one page, and the local web app."""

from __future__ import annotations
