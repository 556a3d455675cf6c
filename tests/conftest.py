"""Test set-up: import helpers from this folder and keep the model cache per session."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
