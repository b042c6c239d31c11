"""The hardware figures the course measures itself against, in one place (benchmarks, Day 1's
memory arithmetic and the GPU checks read them from here instead of each keeping its own).

A T4 has 16 GB of GDDR6; torch reports about 15.1 GiB of it, and the CUDA context takes a few
hundred MB more, so 15 GiB is what a Colab student can plan a run against.
"""
from __future__ import annotations

T4_USABLE_GIB = 15.0
T4_USABLE_MB = int(T4_USABLE_GIB * 1024)   # as memory peaks are printed (MiB)

# name -> GiB a run can use: the cards Day 1's "which GPU do I need" table compares
GPU_MEMORY_GIB = {"T4 (15 GB)": T4_USABLE_GIB, "A100 40GB": 40.0, "48 GB card (A6000/L40S)": 48.0, "A100 80GB": 80.0}
