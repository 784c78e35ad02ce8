"""The prompt cache over HTTP: a conversation's second turn and a request sharing a running
request's system prompt report reused prompt tokens (usage.prompt_tokens_details.cached_tokens)
and give the reply they give with `cache_prompt: false`."""
import threading

import httpx
import openai

import greedy
from conftest import MODEL_ID

SYSTEM = (
    "You are the on-call assistant of a small team that runs a web shop. Answer in at most three "
    "sentences. The shop runs on three servers behind a load balancer; the database is "
    "PostgreSQL 16 with one replica; deployments happen on Tuesdays and Thursdays; incidents are "
    "tracked in the team's issue tracker with the label 'incident'. Never suggest restarting the "
    "database primary without asking a human first. Prefer commands that can be undone."
)


def cached(usage):
    details = usage.prompt_tokens_details
    return details.cached_tokens if details else 0


def metric(base, name):
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics")


def assert_same_greedy_reply(cached_reply, fresh_reply, tie=greedy.TIE):
    """The cached run's greedy reply equals the uncached one's, up to a near-tie (tests/e2e/greedy.py):
    llama.cpp's CPU kernels round differently when the prompt's uncached tail is computed in a
    smaller batch (see the README's prompt cache section), so the two may part only where the
    uncached run's top two tokens are within `tie` nats, and the cached run took the runner-up."""
    ours = [t.model_dump() for t in cached_reply.choices[0].logprobs.content]
    theirs = [t.model_dump() for t in fresh_reply.choices[0].logprobs.content]
    verdict, detail = greedy.compare(ours, theirs, tie)
    assert verdict != "differs", detail
    if verdict == "identical":
        assert cached_reply.choices[0].message.content == fresh_reply.choices[0].message.content


def test_second_turn_reuses_the_first_and_says_the_same_as_uncached(server, client):
    hits_before = metric(server, "minerva_cache_hit_tokens_total")
    turn1 = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "The checkout page is slow since this morning. Where do I look first?"},
    ]
    r1 = client.chat.completions.create(model=MODEL_ID, messages=turn1, temperature=0, max_tokens=32)
    turn2 = turn1 + [
        {"role": "assistant", "content": r1.choices[0].message.content},
        {"role": "user", "content": "The database looks fine. What next?"},
    ]
    r2 = client.chat.completions.create(model=MODEL_ID, messages=turn2, temperature=0, max_tokens=32,
                                        logprobs=True, top_logprobs=2)
    assert cached(r2.usage) >= r1.usage.prompt_tokens - 1, (r1.usage, r2.usage)
    assert cached(r2.usage) < r2.usage.prompt_tokens
    fresh = client.chat.completions.create(
        model=MODEL_ID, messages=turn2, temperature=0, max_tokens=32, extra_body={"cache_prompt": False},
        logprobs=True, top_logprobs=2,
    )
    assert cached(fresh.usage) == 0
    assert_same_greedy_reply(r2, fresh)
    assert metric(server, "minerva_cache_hit_tokens_total") >= hits_before + cached(r2.usage)


def test_a_request_reuses_the_system_prompt_of_one_still_generating(parallel_server):
    client = openai.OpenAI(base_url=f"{parallel_server}/v1", api_key="x", max_retries=0, timeout=300)
    system_tokens = len(httpx.post(f"{parallel_server}/tokenize", json={"content": SYSTEM}).json()["tokens"])
    a = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Write a runbook for a full disk."}],
        temperature=0,
        max_tokens=200,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    first = next(iter(a))
    assert first.choices[0].delta.role == "assistant"
    b_messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Is it safe to deploy on a Friday?"}]
    b = client.chat.completions.create(model=MODEL_ID, messages=b_messages, temperature=0, max_tokens=24)
    slots = httpx.get(f"{parallel_server}/slots").json()["slots"]
    assert any(s["is_processing"] for s in slots), "A should still be generating"
    a.close()
    assert cached(b.usage) >= system_tokens, (system_tokens, b.usage)
    alone = client.chat.completions.create(
        model=MODEL_ID, messages=b_messages, temperature=0, max_tokens=24, extra_body={"cache_prompt": False}
    )
    # Both runs were batched beside other sequences or not, so llama.cpp's kernels may round
    # differently; a departure is reported, not hidden (crates/minerva-llama/tests/prompt_cache.rs
    # checks the same with nothing else running).
    same = alone.choices[0].message.content == b.choices[0].message.content
    print(f"B with the shared prefix reused: identical to uncached: {same}")


def test_a_system_prompt_shared_by_four_concurrent_requests_is_held_once(parallel_server):
    """llama.cpp's unified KV cache: the three requests that reuse the first one's system prompt
    share its cells (llama_memory_seq_cp) instead of holding copies, which /slots and /metrics
    count."""
    client = openai.OpenAI(base_url=f"{parallel_server}/v1", api_key="x", max_retries=0, timeout=300)
    system = " ".join([SYSTEM] * 4)
    system_tokens = len(httpx.post(f"{parallel_server}/tokenize", json={"content": system}).json()["tokens"])
    assert system_tokens > 300

    def ask(question, results, i):
        r = client.chat.completions.create(
            model=MODEL_ID,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            temperature=0,
            max_tokens=24,
            extra_body={"ignore_eos": True},
        )
        results[i] = r

    # The first computes the system prompt; the four that follow, together, reuse it.
    warm = [None]
    ask("Who may restart the database?", warm, 0)
    results = [None] * 4
    threads = [
        threading.Thread(target=ask, args=(q, results, i))
        for i, q in enumerate(["Disk full?", "Deploy on Friday?", "Slow checkout?", "Replica lag?"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(cached(r.usage) >= system_tokens for r in results), [r.usage for r in results]

    body = httpx.get(f"{parallel_server}/slots").json()
    kv = body["kv_cache"][MODEL_ID]
    held = sum(s["n_kv_tokens"] for s in body["slots"] if s["model"] == MODEL_ID)
    assert kv["cells_unshared"] == held, body
    # Four sequences hold the system prompt, and it is stored once: at least three copies saved.
    assert kv["cells_used"] <= held - 3 * system_tokens, body
    assert kv["cells_used"] >= held - 4 * system_tokens, body
    assert kv["cells"] >= 4 * 2048, body
    assert metric(parallel_server, f'minerva_kv_cells_used{{model="{MODEL_ID}"}}') == kv["cells_used"]


def test_a_request_waiting_past_the_queue_timeout_gets_a_503(timeout_server):
    long = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Count from one to one thousand."}],
        "max_tokens": 400,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.Client(base_url=timeout_server, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=long) as running:
            assert running.status_code == 200
            lines = running.iter_lines()
            next(lines)
            short = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            r = http.post("/v1/chat/completions", json=short)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            err = r.json()["error"]
            assert err["code"] == "queue_timeout" and "queue timeout" in err["message"], err
            # A streaming request that times out gets the status too, not an error inside a 200.
            r = http.post("/v1/chat/completions", json={**short, "stream": True})
            assert r.status_code == 503 and r.json()["error"]["code"] == "queue_timeout"
        r = http.post("/v1/chat/completions", json=short)
        assert r.status_code == 200, r.text
        slots = http.get("/slots").json()
        assert slots["queued"] == {MODEL_ID: 0}


# Three long system prompts that share only the chat template's first tokens.
SYSTEMS = [
    SYSTEM,
    ("You are a patient teacher of geography for a class of twelve-year-olds. You explain rivers, "
     "mountains, capitals and climates with short examples from everyday life, you never use jargon "
     "without saying what it means, you end every answer with one question that checks the pupil "
     "understood, and you keep every answer under four sentences so that it fits on the board. When a "
     "pupil is wrong you say what was right in the answer first, then what to look at again, and you "
     "never laugh at a question. You prefer maps, rivers and weather the pupils can see from the "
     "school window to faraway examples, and you name the continent of every place you mention."),
    ("You are a careful reviewer of Python code in a company that writes data pipelines. You point "
     "out bugs first, then missing tests, then style; you quote the line you mean; you suggest the "
     "smallest change that fixes each problem; you never rewrite a whole function when one line will "
     "do; and you say clearly when the code is fine as it is, instead of inventing problems."),
]


def test_a_restore_after_the_host_cache_evicts_takes_its_own_prompts_kv(tmp_path):
    """One sequence and a host cache of 4 MiB (A's and B's KV, not C's too). A, B and C
    each push the one before into the host cache; D shares A's system prompt, so the best host
    entry is A's, but starting D saves C first, which evicts A's entry, the oldest. D must then not
    be given another prompt's KV: its reply is its reply without the cache (this regressed: the
    host cache's entries moved when the oldest was dropped, and D was restored from B's, which
    is longer than the prefix D shares with A, so nothing else caught it)."""
    import conftest

    proc, base, log = conftest._start_server(
        ["--parallel", "1", "--cache-ram", "4"], str(tmp_path / "evict-{port}.log"))
    try:
        def ask(system, question, cache=True):
            r = httpx.post(f"{base}/v1/chat/completions", timeout=300, json={
                "model": MODEL_ID, "temperature": 0, "max_tokens": 16, "logprobs": True, "top_logprobs": 2,
                "cache_prompt": cache,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
            })
            assert r.status_code == 200, r.text
            return r.json()["choices"][0]

        for system in SYSTEMS:
            ask(system, "Say hello.")
        d = ask(SYSTEMS[0], "Is it safe to deploy on a Friday?")
        fresh = ask(SYSTEMS[0], "Is it safe to deploy on a Friday?", cache=False)
        verdict, detail = greedy.compare(d["logprobs"]["content"], fresh["logprobs"]["content"])
        assert verdict != "differs", (detail, d["message"]["content"], fresh["message"]["content"])
        text = open(log.name).read()
        assert "prompt cache: evicted" in text, "the scenario needs the host cache to evict"
    finally:
        conftest._stop_server(proc, log)
