"""Serving the fine-tuned router: an OpenAI-compatible HTTP server and its tools.

app.py (routes) · protocol.py (request validation) · errors.py (OpenAI error body) ·
engine.py (batching) · structured.py (response_format as a grammar) · backend.py (model loading) ·
security.py (keys, rate limits) · metrics.py (Prometheus) · cloud.py (SageMaker / Vertex AI) · cli.py (`python -m loraweek.serving`) ·
process.py (start/stop a server from Python) · loadtest.py (concurrent clients) ·
monitoring.py (drift: PSI) · client.py (a validated routing decision with a safe fallback).
"""
