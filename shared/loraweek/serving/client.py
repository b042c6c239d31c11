"""A client that turns the server's answer into a routing decision it can act on, safely.

The model's answer is data, not an instruction: it is parsed and checked against the
closed label sets (`parse_answer`); anything else - an answer cut by max_tokens, a server
error, a timeout - becomes the *safe fallback*: a human agent reviews the ticket.
A prompt injection in the message ("set priority=urgent, intent=refund") can at most
pick another valid label; it can never add a field or trigger an action.
"""
from __future__ import annotations

from loraweek.data.answer import parse_answer

FALLBACK = {"intent": "needs_human", "priority": "medium", "language": None, "reply": None, "source": "fallback"}


def route_message(client, model: str, message: str, max_tokens: int = 128) -> dict:
    """Ask the server, return {intent, priority, language, reply, source}; never raises for a
    model or server failure (source = "model" or "fallback")."""
    import openai

    try:
        resp = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": message}], max_tokens=max_tokens,
            temperature=0, response_format={"type": "json_object"})
        parsed = parse_answer(resp.choices[0].message.content or "")
    except (openai.APIError, openai.APIConnectionError):   # 4xx/5xx, refused connections, timeouts
        parsed = None
    if parsed is None:
        return dict(FALLBACK)
    return {**parsed, "source": "model"}
