"""Test-wide settings."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs a fixed set of examples, so that a green main stays green; a
# developer's run explores new ones (and `HYPOTHESIS_PROFILE=ci` replays CI's).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
