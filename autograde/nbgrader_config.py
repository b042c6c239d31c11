"""nbgrader configuration of the week-6 course (LoRA / QLoRA).

The course maps onto nbgrader like this (paths relative to the course root):

* ``solutions/week06/`` -- nbgrader's *source* directory: instructor notebooks with solutions
  (``### BEGIN SOLUTION``) and hidden tests (``### BEGIN HIDDEN TESTS``);
* ``weeks/week06/``     -- nbgrader's *release* directory: the generated student notebooks;
* assignment ``week06``.

``python -m autograde`` loads this file and only changes ``CourseDirectory.root`` (and the
bounds given on its command line): the release step points the root at a temporary copy of
the repo's ``solutions/``, the grading steps at ``build/grading/`` (never the repo itself).
Running plain ``nbgrader`` with this file from the repo root also works for inspection, but
grading that way bypasses the bounds and tamper checks of ``python -m autograde``.
"""
c = get_config()  # noqa: F821  (provided by traitlets when the file is loaded)

# --- course layout --------------------------------------------------------------------------
c.CourseDirectory.course_id = "week06-lora"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "weeks"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The student id is the first path component under submitted/; notebooks are <name>.ipynb.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "runs", "*.egg-info",
                            ".cache", "outputs"]

# --- generating the student version ---------------------------------------------------------
c.ClearSolutions.code_stub = dict(python="# YOUR CODE HERE\nraise NotImplementedError()")
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.enforce_metadata = True
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.GenerateAssignment.create_assignment = True

# --- executing submissions ------------------------------------------------------------------
# A week-6 notebook takes 1-3 minutes in the ci profile (which NBGRADER_EXECUTION forces);
# one cell may use up to 5 minutes before it is interrupted (CellTimeoutError -> that cell
# fails, the rest of the notebook still runs).  The whole notebook is bounded separately by
# `python -m autograde grade --timeout` (default 600 s) and `--memory-mb` (default 6144).
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:"]

# Warnings on stderr must not cost points.  nbgrader 0.9.6 scores a test cell 0 when it has an
# output of type "error" *or a stream named "stderr"* (nbgrader.utils.determine_grade), so a
# transformers/torch deprecation warning inside a test cell would fail a correct answer.
# IgnorePattern (disabled by default, runs right after Execute) drops stderr stream outputs
# matching `pattern`; a failing test still fails, because a raised exception -- a failed
# assert, an error, a timeout -- is an output of type "error", never a stderr stream.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?s).*"

# Keep feedback readable: very long outputs (training logs) are truncated.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 100
