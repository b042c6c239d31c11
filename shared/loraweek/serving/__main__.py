"""`python -m loraweek.serving --adapter DIR` or `--model DIR`: the course's OpenAI-compatible server.

A thin entry point; the server lives in `loraweek.serving` (see `loraweek.serving.cli`)."""
import sys

from loraweek.serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
