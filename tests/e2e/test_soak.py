"""The soak's short CI version: scripts/bench/soak.py's checks with 40 streams per soak (the
benchmark runs 200; see scripts/bench/README.md).

One `minerva serve --parallel 4` of its own; solo greedy answers of 12 prompts (some sharing
system prompts), then a warm-up soak and a measured soak of 40 concurrent streams each, with
random client disconnects and client deadlines. Afterwards: no sequence busy or queued, the
prompt cache within its budget, the worker never replaced, resident memory after the measured
soak within 5% of after the warm-up, every completed stream equal to its solo answer or parting
at a near-tie (tests/e2e/greedy.py).
"""
import json
import os
import sys

from conftest import LOG_DIR, _required_env

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "bench"))
import soak  # noqa: E402

STREAMS = 40
CTX_SIZE = 1024


def test_soak_leaves_no_busy_sequence_no_growth_and_greedy_answers(tmp_path):
    binary, model_path = _required_env("MINERVA_BIN"), _required_env("MINERVA_QWEN_GGUF")
    log_path = os.path.join(LOG_DIR, f"minerva-e2e-soak-{os.getpid()}.log")
    with soak.SoakServer(binary, model_path, parallel=4, ctx_size=CTX_SIZE, cache_ram=16,
                         queue=STREAMS + 16, log_path=log_path) as server:
        model = soak.get_json(server.base, "/v1/models")["data"][0]["id"]
        figures, failures = soak.run(server.base, model, streams=STREAMS, seed=7, ctx_size=CTX_SIZE,
                                     prompts=soak.PROMPTS[::2])
    figures.update(parallel=4, failures=failures)
    soak.print_figures(figures)
    (tmp_path / "soak.json").write_text(json.dumps(figures, indent=2))
    assert not failures, (failures, log_path)
    for fig in figures["soaks"].values():
        assert fig["disconnected"] + fig["timed_out"] > 0, "the soak had no client going away"
