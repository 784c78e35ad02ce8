"""The KV cache's layout options, through the real server and the `openai` client:
--no-kv-unified (a KV stream of --ctx-size cells for each sequence, as llama-server without
--kv-unified) and --flash-attn off. Both serve the same greedy replies as the default (one KV
cache for all sequences, flash attention auto: on for the CPU), up to a near-tie
(tests/e2e/greedy.py)."""
import os

import httpx
import openai
import pytest

from conftest import CTX_SIZE, MODEL_ID, _extra_server
from test_kv_pool import SYSTEM, assert_load_refused, kv_cache, run_together
from test_prompt_cache import assert_same_greedy_reply

QUESTIONS = ["Disk full?", "Deploy on Friday?", "Slow checkout?", "Replica lag?"]


@pytest.fixture(scope="module")
def separate_server():
    """Four sequences, each with a KV stream of its own."""
    yield from _extra_server("kv-separate", ["--parallel", "4", "--no-kv-unified"])


@pytest.fixture(scope="module")
def no_flash_server():
    """Four sequences in one KV cache, without flash attention."""
    yield from _extra_server("kv-no-flash", ["--parallel", "4", "--flash-attn", "off"])


def client_of(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=300)


def ask(base, question, **extra):
    return client_of(base).chat.completions.create(
        model=MODEL_ID, messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        temperature=0, max_tokens=24, logprobs=True, top_logprobs=2, **extra,
    )


def shared_prefix_run(base):
    """Warms the system prompt, then asks four questions under it at once; returns the replies
    and the system prompt's length in tokens."""
    system_tokens = len(httpx.post(f"{base}/tokenize", json={"content": SYSTEM}).json()["tokens"])
    assert not isinstance(run_together(client_of(base), [
        ([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}], 4)])[0], Exception)
    results = run_together(client_of(base), [
        ([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}], 24) for q in QUESTIONS])
    for r in results:
        assert not isinstance(r, Exception), r
        assert r.usage.completion_tokens == 24
        assert r.usage.prompt_tokens_details.cached_tokens >= system_tokens, r.usage
    return results, system_tokens


def test_separate_streams_copy_a_shared_prefix_and_reply_as_one_cache_does(separate_server, parallel_server):
    _, system_tokens = shared_prefix_run(separate_server)
    kv = kv_cache(separate_server)
    # Every sequence has its window; a prefix read once is copied to each, not shared.
    assert kv["cells"] == 4 * CTX_SIZE, kv
    assert kv["cells_used"] == kv["cells_unshared"] >= 4 * system_tokens, kv
    for question in QUESTIONS[:2]:
        assert_same_greedy_reply(ask(separate_server, question), ask(parallel_server, question))


def test_separate_streams_keep_an_idle_conversation_in_place(separate_server):
    """Another request's cells cost a sequence with a stream of its own nothing, so an idle
    conversation keeps its cells (no move to host memory) and its next turn reuses them."""
    client = client_of(separate_server)
    turn1 = [{"role": "user", "content": "Separate streams. " + SYSTEM + " Which rule is about the database?"}]
    a1 = client.chat.completions.create(model=MODEL_ID, messages=turn1, temperature=0, max_tokens=8)
    client.completions.create(model=MODEL_ID, prompt="Zebras are", temperature=0, max_tokens=8)
    held = [s for s in httpx.get(f"{separate_server}/slots").json()["slots"] if s["n_kv_tokens"] > 0]
    assert any(s["n_kv_tokens"] >= a1.usage.prompt_tokens for s in held), held
    turn2 = turn1 + [
        {"role": "assistant", "content": a1.choices[0].message.content},
        {"role": "user", "content": "And which one is about deployments?"},
    ]
    a2 = client.chat.completions.create(model=MODEL_ID, messages=turn2, temperature=0, max_tokens=8)
    assert a2.usage.prompt_tokens_details.cached_tokens >= a1.usage.prompt_tokens - 1, a2.usage


def test_without_flash_attention_a_prefix_is_shared_and_replies_match(no_flash_server, parallel_server):
    """Attention without flash attention multiplies against every cell in use and masks
    afterwards: other arithmetic, the same sharing of a prefix, the same replies up to a
    near-tie."""
    shared_prefix_run(no_flash_server)
    kv = kv_cache(no_flash_server)
    assert kv["cells_used"] < kv["cells_unshared"], kv
    for question in QUESTIONS[:2]:
        assert_same_greedy_reply(ask(no_flash_server, question), ask(parallel_server, question))


@pytest.mark.parametrize("args, message", [
    (["--no-kv-unified", "--kv-size", "4096"], "cannot be used with"),
    (["--flash-attn", "sometimes"], "invalid value 'sometimes'"),
])
def test_layout_options_that_make_no_sense_are_refused(tmp_path, args, message):
    assert_load_refused(tmp_path, args, message)


@pytest.fixture(scope="module")
def gemma_server():
    """Gemma 3 (sliding-window layers of 512 tokens), four sequences in one KV cache."""
    yield from _extra_server("kv-gemma", ["--parallel", "4", "--ctx-size", "1024"],
                             model=os.environ["MINERVA_GEMMA_GGUF"])


def test_a_sliding_window_model_keeps_a_long_system_prompt_across_unrelated_requests(gemma_server):
    """A saved sliding-window state cannot be cut back to a shorter prefix (its older cells are
    gone), so Gemma's idle conversations stay in place rather than move to host memory, and an
    unrelated request (sharing only the BOS token) takes an empty sequence, not theirs."""
    model = httpx.get(f"{gemma_server}/v1/models").json()["data"][0]["id"]
    client = client_of(gemma_server)
    system = SYSTEM * 2  # longer than the 512-token window

    def ask(question):
        return client.chat.completions.create(
            model=model, messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            temperature=0, max_tokens=8).usage

    first = ask("Disk full?")
    client.completions.create(model=model, prompt="Zebras are", temperature=0, max_tokens=8)
    second = ask("Replica lag?")
    assert first.prompt_tokens > 600
    assert second.prompt_tokens_details.cached_tokens >= first.prompt_tokens - 32, (first, second)
