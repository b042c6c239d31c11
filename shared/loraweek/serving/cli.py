"""`python -m loraweek.serving`: load the model, build the app, run uvicorn.

    LORAWEEK_API_KEYS=my-secret python -m loraweek.serving --adapter runs/day2/adapter
    LORAWEEK_API_KEYS=my-secret python -m loraweek.serving --model runs/day5/merged --port 8000
    LORAWEEK_API_KEYS=my-secret python -m loraweek.serving --course-adapter   # the course's fine-tuned adapter
    LORAWEEK_OAUTH_CLIENTS=billing-bot:SECRET:chat python -m loraweek.serving --adapter DIR \
        --oauth-key-file signing-key.pem --ssl-certfile server.pem --ssl-keyfile server-key.pem

The port is `--port`, else `$AIP_HTTP_PORT` (Vertex AI), else 8000.  The model loads in
the background: `/health` answers 503 until it is ready, then 200.  With OAuth clients in
the environment the server also issues and accepts client-credentials tokens (oauth.py);
with a certificate and key it speaks https only (tls.py makes a local CA for trying it).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from loraweek.serving.app import ServerConfig, create_app
from loraweek.serving.backend import QUANTIZATIONS, load_served_model, warm_up
from loraweek.serving.oauth import CLIENTS_ENV, OAuthServer, clients_from_env, load_private_key
from loraweek.serving.security import KEYS_ENV, keys_from_env


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loraweek.serving", description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--adapter", help="a peft adapter folder (served as NAME plus its base as 'base')")
    what.add_argument("--model", help="a full model folder, e.g. a merged export")
    what.add_argument("--course-adapter", action="store_true",
                      help="the course's fine-tuned adapter for the profile (trained once and cached)")
    p.add_argument("--base", help="base model for --adapter (default: the one recorded in adapter_config.json)")
    p.add_argument("--name", help="served model name (default: helpdesk-router, or the --model folder name)")
    p.add_argument("--profile", help="ci / colab / gpu (default: from the hardware)")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="none", help="load the base in 4-bit NF4 or not")
    p.add_argument("--merge", action="store_true", help="merge the adapter into a full-precision base")
    p.add_argument("--no-kv-cache", action="store_true", help="recompute the prefix every step (for measuring)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("AIP_HTTP_PORT", 8000)))
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: decode steps are tiny matmuls; see cli.py)")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--max-tokens-cap", type=int, default=256)
    p.add_argument("--max-input-tokens", type=int, default=1024)
    p.add_argument("--max-body-bytes", type=int, default=1_000_000)
    p.add_argument("--rate-limit", type=float, default=600, help="requests per minute per API key")
    p.add_argument("--public-cloud-routes", action="store_true",
                   help="no API key on /invocations and $AIP_PREDICT_ROUTE (the platform authenticates)")
    p.add_argument("--oauth-key-file", help=f"RSA private key (PEM) that signs access tokens, with {CLIENTS_ENV} set "
                                            "(default: a fresh key each start; tokens die with the process)")
    p.add_argument("--oauth-token-ttl", type=int, default=300, help="access-token lifetime in seconds")
    p.add_argument("--oauth-audience", default="loraweek-router-api", help="the tokens' aud claim (this API)")
    p.add_argument("--oauth-issuer", default="loraweek-router", help="the tokens' iss claim (this server)")
    p.add_argument("--ssl-certfile", help="server certificate (PEM): serve https")
    p.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    keys = keys_from_env()
    try:
        clients = clients_from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not keys and not clients:
        print(f"error: no API keys. Set {KEYS_ENV}=key1,key2 (or OAuth clients, {CLIENTS_ENV}=id:secret:scopes) in "
              "the environment (never on the command line, where other users can read it in the process list).",
              file=sys.stderr)
        return 2
    if bool(a.ssl_certfile) != bool(a.ssl_keyfile):
        print("error: --ssl-certfile and --ssl-keyfile go together (the certificate and its private key)", file=sys.stderr)
        return 2
    if a.oauth_key_file and not clients:
        print(f"error: --oauth-key-file needs OAuth clients: set {CLIENTS_ENV}=id:secret:scopes", file=sys.stderr)
        return 2
    oauth = OAuthServer(clients, load_private_key(a.oauth_key_file) if a.oauth_key_file else None,
                        issuer=a.oauth_issuer, audience=a.oauth_audience, ttl_s=a.oauth_token_ttl) if clients else None
    import torch

    from loraweek.profiles import get_profile

    # One decode step multiplies a few rows by each weight matrix.  On a CPU, splitting such a
    # small matmul over OpenMP threads costs more in synchronisation than it saves, and it
    # collapses when the cores are busy (measured on a loaded 2-core machine, batch 8:
    # 0.66 ms per linear layer with 1 thread, 11 ms with 2).  The other core serves HTTP.
    torch.set_num_threads(a.threads)
    profile = get_profile(a.profile)

    def load():
        adapter = a.adapter
        if a.course_adapter:
            from loraweek.models.finetuned import course_adapter
            adapter = course_adapter(profile, progress=False)
        served = load_served_model(adapter=adapter, model=a.model, base=a.base, quantization=a.quantization,
                                   merge=a.merge, adapter_name=a.name, profile=profile)
        warm_up(served)
        logging.getLogger("loraweek.serving").warning("model ready: %s", served.description)
        return served

    config = ServerConfig(api_keys=keys, max_body_bytes=a.max_body_bytes, max_input_tokens=a.max_input_tokens,
                          max_tokens_cap=a.max_tokens_cap, default_max_tokens=min(profile.max_new_tokens * 2, a.max_tokens_cap),
                          rate_limit_per_minute=a.rate_limit, max_batch=a.max_batch, max_queue=a.max_queue,
                          use_cache=not a.no_kv_cache, public_cloud_routes=a.public_cloud_routes, oauth=oauth)
    import uvicorn

    # access logs name the route and status only; uvicorn never logs headers, so no key leaks
    uvicorn.run(create_app(load, config), host=a.host, port=a.port, log_level="warning",
                ssl_certfile=a.ssl_certfile, ssl_keyfile=a.ssl_keyfile)
    return 0
