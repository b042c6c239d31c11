"""What the notebooks share besides the lessons: the first cell's report (`env`, `timings`), the
self-checks and their fallback to the course's answer (`selfcheck`, `fallback`), the graded quiz
(`quiz`), the study-time table (`study`), figures (`plots`, `diagrams`) and the HTML reference run
(`reference_html`)."""
