"""A KV cache pool smaller than --parallel x --ctx-size (--kv-size): what llama.cpp's unified KV
cache makes possible. A prefix several requests share is held once, so requests that would not
fit with a copy each run together; prompts that do not fit wait for room; generations that
outgrow the pool end the most recently started one with a 503, and the server keeps serving."""
import os
import subprocess
import threading

import httpx
import openai
import pytest

from conftest import MODEL_ID, _extra_server
from test_prompt_cache import assert_same_greedy_reply

POOL = 1024

SYSTEM = (
    "You are the on-call assistant of a small team that runs a web shop. Answer in at most three "
    "sentences. The shop runs on three servers behind a load balancer; the database is "
    "PostgreSQL 16 with one replica; deployments happen on Tuesdays and Thursdays; incidents are "
    "tracked in the team's issue tracker with the label 'incident'. Never suggest restarting the "
    "database primary without asking a human first. Prefer commands that can be undone. "
) * 4


@pytest.fixture(scope="module")
def tight_server():
    yield from _extra_server("kv-pool", ["--parallel", "4", "--ctx-size", "1024", "--kv-size", str(POOL)])


@pytest.fixture(scope="module")
def tiny_pool_server():
    """Two sequences of 512 tokens sharing 512 cells."""
    yield from _extra_server("kv-pool-tiny", ["--parallel", "2", "--ctx-size", "512", "--kv-size", "512"])


@pytest.fixture(scope="module")
def no_host_cache_server():
    """Two sequences and no host prompt cache: what the context holds is all there is."""
    yield from _extra_server("kv-no-host-cache", ["--parallel", "2", "--cache-ram", "0"])


def run_together(client, requests):
    """Sends each (messages, max_tokens) at once; returns the responses or the exceptions."""
    results = [None] * len(requests)

    def one(i, messages, max_tokens):
        try:
            results[i] = client.chat.completions.create(
                model=MODEL_ID, messages=messages, temperature=0, max_tokens=max_tokens,
                extra_body={"ignore_eos": True},
            )
        except openai.APIError as e:
            results[i] = e

    threads = [threading.Thread(target=one, args=(i, m, n)) for i, (m, n) in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def kv_cache(base):
    return httpx.get(f"{base}/slots").json()["kv_cache"][MODEL_ID]


def test_requests_sharing_a_prefix_fit_a_pool_their_copies_would_not(tight_server):
    client = openai.OpenAI(base_url=f"{tight_server}/v1", api_key="x", max_retries=0, timeout=300)
    system_tokens = len(httpx.post(f"{tight_server}/tokenize", json={"content": SYSTEM}).json()["tokens"])
    assert 4 * system_tokens > POOL
    first = run_together(client, [([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}], 4)])
    assert not isinstance(first[0], Exception), first
    questions = ["Disk full?", "Deploy on Friday?", "Slow checkout?", "Replica lag?"]
    results = run_together(
        client, [([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}], 24) for q in questions]
    )
    for r in results:
        assert not isinstance(r, Exception), r
        assert r.usage.completion_tokens == 24
        assert r.usage.prompt_tokens_details.cached_tokens >= system_tokens, r.usage
    kv = kv_cache(tight_server)
    assert kv["cells"] == POOL, kv
    assert kv["cells_unshared"] > POOL >= kv["cells_used"], kv


def test_prompts_that_do_not_fit_together_wait_for_room(tight_server):
    client = openai.OpenAI(base_url=f"{tight_server}/v1", api_key="x", max_retries=0, timeout=300)
    requests = [
        ([{"role": "user", "content": f"Case {i}. {SYSTEM} Which rule matters most in case {i}?"}], 8)
        for i in range(4)
    ]
    prompt_tokens = len(httpx.post(f"{tight_server}/tokenize", json={"content": SYSTEM}).json()["tokens"])
    assert 4 * prompt_tokens > POOL
    results = run_together(client, requests)
    for r in results:
        assert not isinstance(r, Exception), r
        assert r.usage.completion_tokens == 8
    assert kv_cache(tight_server)["cells_used"] <= POOL


def test_generations_outgrowing_the_pool_end_the_newest_with_a_503(tiny_pool_server):
    client = openai.OpenAI(base_url=f"{tiny_pool_server}/v1", api_key="x", max_retries=0, timeout=600)
    requests = [([{"role": "user", "content": f"Count to a thousand, run {i}."}], 300) for i in range(2)]
    results = run_together(client, requests)
    done = [r for r in results if not isinstance(r, Exception)]
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(done) == 1 and len(failed) == 1, results
    for r in done:
        assert r.usage.completion_tokens == 300
    for e in failed:
        assert isinstance(e, openai.APIStatusError) and e.status_code == 503, e
        assert "KV cache is full" in str(e), e
    # The server goes on serving.
    after = run_together(client, [([{"role": "user", "content": "Say hi."}], 4)])
    assert not isinstance(after[0], Exception), after
    assert kv_cache(tiny_pool_server)["cells_used"] <= 512


def test_an_idle_conversation_leaves_the_pool_when_another_starts_and_comes_back_from_host_memory(parallel_server):
    """As llama-server's --cache-idle-slots: in one KV stream every token attends over all the
    cells in use, so when a new request starts, the idle sequences' KV goes to the host prompt
    cache and their cells are freed. The conversation's next turn is restored, not recomputed."""
    client = openai.OpenAI(base_url=f"{parallel_server}/v1", api_key="x", max_retries=0, timeout=300)
    turn1 = [{"role": "user", "content": "Idle test. " + SYSTEM + " Which rule is about the database?"}]
    a1 = client.chat.completions.create(model=MODEL_ID, messages=turn1, temperature=0, max_tokens=8)
    after_a = kv_cache(parallel_server)
    assert after_a["cells_used"] >= a1.usage.prompt_tokens, after_a
    b_messages = [{"role": "user", "content": "Name three colours."}]
    b = client.chat.completions.create(
        model=MODEL_ID, messages=b_messages, temperature=0, max_tokens=8, logprobs=True, top_logprobs=2
    )
    after_b = kv_cache(parallel_server)
    # B, alone in the cache once A's cells were freed, had the prefix it reused moved to the
    # start of the cache: its reply is the one computed from nothing.
    fresh = client.chat.completions.create(
        model=MODEL_ID, messages=b_messages, temperature=0, max_tokens=8, logprobs=True, top_logprobs=2,
        extra_body={"cache_prompt": False},
    )
    assert_same_greedy_reply(b, fresh)
    # Only B's sequence holds cells now: A's went to host memory.
    assert after_b["cells_used"] <= b.usage.prompt_tokens + b.usage.completion_tokens, after_b
    assert after_b["cells_used"] > 0, after_b
    turn2 = turn1 + [
        {"role": "assistant", "content": a1.choices[0].message.content},
        {"role": "user", "content": "And which one is about deployments?"},
    ]
    a2 = client.chat.completions.create(model=MODEL_ID, messages=turn2, temperature=0, max_tokens=8)
    assert a2.usage.prompt_tokens_details.cached_tokens >= a1.usage.prompt_tokens - 1, a2.usage


def test_without_a_host_cache_a_new_request_takes_an_empty_sequence(no_host_cache_server):
    """With --cache-ram 0 idle sequences keep their cells, and a request that shares nothing
    takes an empty sequence rather than overwrite a kept conversation (which would be lost)."""
    client = openai.OpenAI(base_url=f"{no_host_cache_server}/v1", api_key="x", max_retries=0, timeout=300)
    turn1 = [{"role": "user", "content": "No host cache. " + SYSTEM + " Which rule is about the database?"}]
    a1 = client.chat.completions.create(model=MODEL_ID, messages=turn1, temperature=0, max_tokens=8)
    client.completions.create(model=MODEL_ID, prompt="Zebras are", temperature=0, max_tokens=8)
    slots = httpx.get(f"{no_host_cache_server}/slots").json()["slots"]
    assert sorted(s["n_kv_tokens"] > 0 for s in slots) == [True, True], slots
    turn2 = turn1 + [
        {"role": "assistant", "content": a1.choices[0].message.content},
        {"role": "user", "content": "And which one is about deployments?"},
    ]
    a2 = client.chat.completions.create(model=MODEL_ID, messages=turn2, temperature=0, max_tokens=8)
    assert a2.usage.prompt_tokens_details.cached_tokens >= a1.usage.prompt_tokens - 1, a2.usage


@pytest.mark.parametrize("args, message", [
    (["--ctx-size", "2048", "--kv-size", "1024"],
     "--kv-size 1024 is smaller than the context window of one request (2048 tokens)"),
    (["--ctx-size", "512", "--parallel", "2", "--kv-size", "4000000000"],
     "--kv-size 4000000000 is larger than --parallel 2 × --ctx-size 512"),
])
def test_a_pool_outside_one_window_to_every_window_is_refused(tmp_path, args, message):
    assert_load_refused(tmp_path, args, message)


def assert_load_refused(tmp_path, args, message):
    """`minerva serve` with the Qwen model and `args` exits with an error naming `message`."""
    proc = subprocess.run(
        [os.environ["MINERVA_BIN"], "serve", "--model", os.environ["MINERVA_QWEN_GGUF"], "--no-worker",
         "--port", "1", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "MINERVA_MODELS": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr
