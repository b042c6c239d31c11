"""N concurrent clients against a running server: latency percentiles, throughput, errors.

Each client is a thread with its own HTTP connection that sends its share of the
messages one after another (a closed loop, like real users waiting for answers).  With
`clients=1` the same messages go strictly one at a time: the sequential baseline.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from loraweek.serving.monitoring import percentile

# Short messages unlike any training example (those are full sentences about one order):
# what a router meets on day one, and where a small model slips out of JSON.  Vietnamese
# and English; used by tests/test_serving_structured.py and scripts/bench_structured.py.
SHORT_MESSAGES = [
    "Tôi muốn hoàn tiền 3", "hi", "???", "ok", "cảm ơn", "help", "refund 2", "xin chào", "asdf", "12345",
    "😀", "hủy", "alo alo", "bye", "no", "Tôi muốn hoàn tiền", "where is it", "thanks!", "đơn 5", "huh?",
    "tài khoản", "money back pls", "giao chưa?", "lỗi", "test", "...", "yes", "Chào shop", "order", "sao vậy",
    "DH123", "khẩn cấp!!!", "can u help", "hello?", "tôi cần gấp", "card", "vay", "ship", "lừa đảo", "why",
    "Hoàn tiền 3 lần rồi", "pls", "??", "mật khẩu", "address", "đổi", "123 456", "a", "hmm", "ALO",
]


@dataclass
class Result:
    index: int
    message: str
    status: int
    seconds: float
    text: str = ""
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str = ""


@dataclass
class LoadReport:
    clients: int
    wall_s: float
    results: list[Result] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(r.status != 200 for r in self.results)

    @property
    def tokens(self) -> int:
        return sum(r.completion_tokens for r in self.results)

    def summary(self) -> dict:
        lat = [r.seconds for r in self.results]
        return {"clients": self.clients, "requests": len(self.results), "errors": self.errors,
                "wall_s": round(self.wall_s, 3), "req_per_s": round(len(lat) / self.wall_s, 3),
                "tokens_per_s": round(self.tokens / self.wall_s, 2),
                "p50_s": round(percentile(lat, 50), 3), "p95_s": round(percentile(lat, 95), 3)}


def run_load(base_url: str, api_key: str, model: str, messages: list[str], clients: int,
             max_tokens: int = 64, timeout: float = 300) -> LoadReport:
    """Send every message once, `clients` at a time; results come back in message order."""
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    results: list[Result | None] = [None] * len(messages)
    headers = {"Authorization": f"Bearer {api_key}"}

    def worker(worker_id: int):
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as http:
            for i in range(worker_id, len(messages), clients):
                body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": messages[i]}]}
                t0 = time.perf_counter()
                try:
                    r = http.post("/v1/chat/completions", json=body)
                    dt = time.perf_counter() - t0
                    if r.status_code == 200:
                        data = r.json()
                        results[i] = Result(i, messages[i], 200, dt, data["choices"][0]["message"]["content"],
                                            data["usage"]["completion_tokens"], data["choices"][0]["finish_reason"])
                    else:
                        results[i] = Result(i, messages[i], r.status_code, dt, error=r.text[:300])
                except httpx.HTTPError as exc:
                    results[i] = Result(i, messages[i], 0, time.perf_counter() - t0, error=repr(exc))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return LoadReport(clients, time.perf_counter() - t0, list(results))


def compare(reports: list[LoadReport]) -> str:
    """The reports side by side, with throughput relative to the first (sequential) one."""
    base = reports[0].summary()["tokens_per_s"] or 1e-9
    lines = [f"{'clients':>7} {'requests':>8} {'errors':>6} {'tokens/s':>9} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'speed-up':>8}"]
    for rep in reports:
        s = rep.summary()
        lines.append(f"{s['clients']:>7} {s['requests']:>8} {s['errors']:>6} {s['tokens_per_s']:>9.1f} "
                     f"{s['req_per_s']:>7.2f} {s['p50_s']:>7.3f} {s['p95_s']:>7.3f} {s['tokens_per_s'] / base:>7.2f}x")
    return "\n".join(lines)
