"""Comparing two greedy replies up to a near-tie, shared by the prompt-cache tests and the soak
(scripts/bench/soak.py, tests/e2e/test_soak.py). Standard library only.

llama.cpp's CPU kernels round differently when a prompt's uncached tail is computed in a smaller
batch, or when a sequence is decoded beside others (see the README's prompt cache section), so
two greedy runs of the same prompt may part, but only where the reference run's top two tokens
are within `tie` nats and the other run took the runner-up (or, when the request asked for more
`top_logprobs`, another listed token within `tie` nats of the top one: three-way near-ties happen,
the soak saw " waves" -2.7388, " sun" -2.7460 and took " stars").

A reply is its list of OpenAI logprobs entries, as plain dicts:
`{"token": str, "logprob": float, "top_logprobs": [{"token": str, "logprob": float}, ...]}`
(`top_logprobs: 2` or more in the request).
"""

TIE = 0.25


def compare(ours, theirs, tie=TIE):
    """How `ours` relates to the reference `theirs`: ("identical", None), ("near-tie", detail)
    or ("differs", detail). Both are token lists as above; only the tokens both have are
    compared token by token (a caller that asked for fewer tokens cuts the reference first).

    At the first differing token, `ours` must have taken one of the reference's listed runners-up
    at a gap under `tie` from its top token. When one reply is a strict prefix of the other (one ended at an end-of-
    generation token, which the logprobs do not list), the longer one must have had a near-tie
    at the position where the shorter ended: its own top two within `tie`."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a["token"] == b["token"]:
            continue
        top = b.get("top_logprobs") or []
        detail = {"at": i, "ours": a["token"], "theirs": b["token"],
                  "top": [(t["token"], t["logprob"]) for t in top]}
        if any(a["token"] == t["token"] and top[0]["logprob"] - t["logprob"] < tie for t in top[1:]):
            return "near-tie", detail
        return "differs", detail
    if len(ours) == len(theirs):
        return "identical", None
    longer = ours if len(ours) > len(theirs) else theirs
    i = min(len(ours), len(theirs))
    top = longer[i].get("top_logprobs") or []
    detail = {"at": i, "ours_len": len(ours), "theirs_len": len(theirs), "next": longer[i]["token"],
              "top": [(t["token"], t["logprob"]) for t in top]}
    if len(top) >= 2 and top[0]["logprob"] - top[1]["logprob"] < tie:
        return "near-tie", detail
    return "differs", detail
