"""How long each notebook takes in each profile, as measured: printed by every notebook's first
code cell (`loraweek.notebook.env.print_environment(profile, notebook=...)`), so a student knows what a
run costs before starting it.  One table instead of figures typed into five notebooks: re-measure
with `bash run.sh course --profile P` (or the suite's --durations for ci) and update the row and
`MEASURED`.  None: not measured yet -- and then the notebook says so instead of guessing."""
from __future__ import annotations

# profile -> where and how its column was measured
MEASURED = {
    "ci": "`bash run.sh test` from a fresh clone at 360a833 (tests/test_notebooks.py's durations), 2-core AMD "
          "EPYC, 2026-12-02, while another test run shared the cores (upper bounds; Day 3 most affected)",
    "laptop": "`bash run.sh course --profile laptop --only dayN`, 2-core AMD EPYC (AVX2, ~100 GFLOP/s fp32 "
              "matmul), the cores otherwise idle: Days 2-5 at e5591ad on 2026-12-04, Day 1 on 2026-12-02; "
              "docs/MEASUREMENTS.md (2026-12-04) has each day's wall time, peak RSS and the cells that take the time",
}

# notebook stem -> profile -> minutes of wall clock (None: not measured)
MINUTES = {
    "day1_lora_qlora_intro": {"ci": 1.2, "laptop": 5.0, "colab": None, "gpu": None},
    "day2_qlora_finetuning": {"ci": 3.7, "laptop": 19.5, "colab": None, "gpu": None},
    "day3_method_comparison": {"ci": 11.0, "laptop": 36.5, "colab": None, "gpu": None},
    "day4_evaluation": {"ci": 2.8, "laptop": 12.5, "colab": None, "gpu": None},
    "day5_deployment": {"ci": 1.4, "laptop": 11.3, "colab": None, "gpu": None},
}


# Days 3-5 start from the course adapter (loraweek.models.finetuned.course_adapter): the one Day 2
# published in this runtime, or one cached by an earlier run.  Where neither exists (a fresh
# runtime opening Day 3, 4 or 5 first), the first of them trains it, which MINUTES leaves out:
# profile -> minutes of that training run (None: not measured).  laptop: "course adapter trained
# in 580 s" inside Day 3 at e5591ad, 2026-12-04 (docs/MEASUREMENTS.md).
USES_COURSE_ADAPTER = ("day3_method_comparison", "day4_evaluation", "day5_deployment")
ADAPTER_MINUTES = {"ci": None, "laptop": 9.7, "colab": None, "gpu": None}


def describe(notebook: str, profile_name: str | None = None) -> str:
    """One line per profile: the measured minutes, or 'not measured yet'; the current one marked."""
    if notebook not in MINUTES:
        raise ValueError(f"unknown notebook {notebook!r}; expected one of {', '.join(MINUTES)}")
    lines = [f"time for {notebook} (wall clock, as measured; see loraweek/notebook/timings.py for where):"]
    for name, minutes in MINUTES[notebook].items():
        mark = "  <- this run" if name == profile_name else ""
        when = f"about {minutes:g} min" if minutes is not None else "not measured yet"
        lines.append(f"  {name:<7} {when}{mark}")
    if notebook in USES_COURSE_ADAPTER:
        extra = ADAPTER_MINUTES.get(profile_name)
        lines.append("  (with the course adapter Day 2 published in this runtime, or one cached earlier; without it this "
                     "notebook first trains it: " + (f"about {extra:g} min more" if extra is not None else
                                                     "not measured yet for this profile") + ")")
    return "\n".join(lines)
