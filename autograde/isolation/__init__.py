"""The two isolation modes of `grade --isolation` (the mode strings are what a run prints and records):

* sandbox: the kernel runs inside bubblewrap, read-only to the course and offline (bwrap.py);
* guard: no bubblewrap; what a kernel could change on disk is fingerprinted and put back (fs_restore.py).
"""
from __future__ import annotations

SANDBOX = "sandbox (bubblewrap)"
GUARD = "guard (no sandbox: fingerprint and restore)"
