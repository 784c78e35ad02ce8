"""Tool-call success on a fixed set of 50 prompts (30 offering one tool, 20 offering three), at
temperature 0, with `tool_choice` `auto` and `required`: the share of replies that come back as a
valid `tool_calls` entry naming the right function with arguments that parse as a JSON object.

Stdlib only. Runs against Minerva (started here, or `--url` of one already running) and, with
`--llama-server PATH`, the reference llama-server (`--jinja`) on the same model, one after the
other in the same run.

    python3 scripts/bench/tool_calls.py --minerva target/debug/minerva \
        --model ~/.local/share/minerva/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
        [--llama-server ~/.cache/minerva/reference/build-0.3.36/bin/llama-server] [--json OUT]
"""
import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from servers import Server, free_port


def tool(name, description, props, required):
    return {"type": "function", "function": {"name": name, "description": description,
            "parameters": {"type": "object", "properties": props, "required": required}}}


WEATHER = tool("get_weather", "Get the current weather in a city", {"city": {"type": "string"}}, ["city"])
STOCK = tool("get_stock_price", "Get the latest price of a stock by its ticker symbol",
             {"ticker": {"type": "string"}}, ["ticker"])
EMAIL = tool("send_email", "Send an email", {"to": {"type": "string"}, "subject": {"type": "string"},
             "body": {"type": "string"}}, ["to", "subject", "body"])
SEARCH = tool("search_web", "Search the web for a query", {"query": {"type": "string"}}, ["query"])
CONVERT = tool("convert_currency", "Convert an amount between currencies",
               {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
               ["amount", "from", "to"])
TIMER = tool("set_timer", "Set a timer for a number of minutes", {"minutes": {"type": "integer"}}, ["minutes"])

# (prompt, tools offered, the function that should be called)
ONE_TOOL = [
    ("What is the weather in Paris?", [WEATHER], "get_weather"),
    ("Is it raining in London right now?", [WEATHER], "get_weather"),
    ("How hot is it in Cairo today?", [WEATHER], "get_weather"),
    ("Tell me the weather in Tokyo.", [WEATHER], "get_weather"),
    ("Should I take an umbrella in Seattle today?", [WEATHER], "get_weather"),
    ("What's the temperature in Berlin?", [WEATHER], "get_weather"),
    ("Weather report for Sydney, please.", [WEATHER], "get_weather"),
    ("What is Apple's stock price?", [STOCK], "get_stock_price"),
    ("How much is one share of MSFT?", [STOCK], "get_stock_price"),
    ("Price of TSLA right now?", [STOCK], "get_stock_price"),
    ("Check the NVDA stock price for me.", [STOCK], "get_stock_price"),
    ("What does Amazon stock trade at?", [STOCK], "get_stock_price"),
    ("Email bob@example.com that the meeting moved to 3pm.", [EMAIL], "send_email"),
    ("Send alice@example.com a thank-you note for the flowers.", [EMAIL], "send_email"),
    ("Write to team@example.com with subject 'Release' saying version 2 is out.", [EMAIL], "send_email"),
    ("Let carol@example.com know I will be late.", [EMAIL], "send_email"),
    ("Search the web for the tallest building in the world.", [SEARCH], "search_web"),
    ("Look up the latest Rust release notes online.", [SEARCH], "search_web"),
    ("Find recipes for vegan lasagna.", [SEARCH], "search_web"),
    ("Who won the last football world cup? Search for it.", [SEARCH], "search_web"),
    ("Search for reviews of the Framework laptop.", [SEARCH], "search_web"),
    ("Convert 100 US dollars to euros.", [CONVERT], "convert_currency"),
    ("How many yen is 50 pounds?", [CONVERT], "convert_currency"),
    ("Convert 20 EUR to CHF.", [CONVERT], "convert_currency"),
    ("What is 1000 INR in USD?", [CONVERT], "convert_currency"),
    ("Set a timer for 10 minutes.", [TIMER], "set_timer"),
    ("Remind me in 25 minutes, set a timer.", [TIMER], "set_timer"),
    ("Start a 3 minute timer for my tea.", [TIMER], "set_timer"),
    ("Timer: 45 minutes.", [TIMER], "set_timer"),
    ("I need a timer of one hour, which is 60 minutes.", [TIMER], "set_timer"),
]
THREE = [WEATHER, STOCK, TIMER]
THREE_B = [EMAIL, SEARCH, CONVERT]
THREE_TOOLS = [
    ("What is the weather in Madrid?", THREE, "get_weather"),
    ("What is Google's stock price?", THREE, "get_stock_price"),
    ("Set a timer for 15 minutes.", THREE, "set_timer"),
    ("Is it snowing in Oslo?", THREE, "get_weather"),
    ("How is IBM stock doing today?", THREE, "get_stock_price"),
    ("Start a 5 minute timer.", THREE, "set_timer"),
    ("Weather in Rome please.", THREE, "get_weather"),
    ("Quote for AAPL?", THREE, "get_stock_price"),
    ("Countdown of 30 minutes, please.", THREE, "set_timer"),
    ("Is it windy in Chicago today?", THREE, "get_weather"),
    ("Email dave@example.com the agenda for tomorrow.", THREE_B, "send_email"),
    ("Search the web for the population of Canada.", THREE_B, "search_web"),
    ("Convert 250 dollars to pounds.", THREE_B, "convert_currency"),
    ("Send erin@example.com a note saying the build is green.", THREE_B, "send_email"),
    ("Look up the best hiking trails near Denver.", THREE_B, "search_web"),
    ("How many euros is 75 Swiss francs?", THREE_B, "convert_currency"),
    ("Tell frank@example.com by email that lunch is at noon.", THREE_B, "send_email"),
    ("Find information on the James Webb telescope online.", THREE_B, "search_web"),
    ("Convert 12.5 GBP to JPY.", THREE_B, "convert_currency"),
    ("Search for the history of the Eiffel Tower.", THREE_B, "search_web"),
]
PROMPTS = ONE_TOOL + THREE_TOOLS


def post(base, body, timeout=300):
    req = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return {"error": e.read().decode(errors="replace")}


def valid(reply, expected=None):
    """A first tool call whose arguments parse as an object (naming `expected`, if given)."""
    try:
        calls = reply["choices"][0]["message"].get("tool_calls") or []
    except (KeyError, IndexError):
        return False
    if not calls or (expected is not None and calls[0]["function"]["name"] != expected):
        return False
    try:
        return isinstance(json.loads(calls[0]["function"]["arguments"]), dict)
    except (ValueError, TypeError):
        return False


def measure(name, base, model):
    out = {}
    for choice in ("auto", "required"):
        ok, any_call, started = 0, 0, time.monotonic()
        for prompt, tools, expected in PROMPTS:
            reply = post(base, {"model": model, "temperature": 0, "max_tokens": 96, "tools": tools,
                                "tool_choice": choice, "parallel_tool_calls": False,
                                "messages": [{"role": "user", "content": prompt}]})
            ok += valid(reply, expected)
            any_call += valid(reply)
        out[choice] = {"right_function": ok, "valid_call": any_call, "of": len(PROMPTS),
                       "seconds": round(time.monotonic() - started, 1)}
        print(f"{name:13} tool_choice={choice:9} {ok}/{len(PROMPTS)} valid calls to the right function, "
              f"{any_call}/{len(PROMPTS)} valid calls ({out[choice]['seconds']} s)", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minerva", help="the minerva binary (started here)")
    ap.add_argument("--url", help="a Minerva already running, instead of --minerva")
    ap.add_argument("--model", required=True, help="the GGUF file")
    ap.add_argument("--llama-server", help="the reference llama-server binary (run with --jinja)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    results = {}
    if args.url:
        models = json.load(urllib.request.urlopen(args.url + "/v1/models"))["data"]
        results["minerva"] = measure("minerva", args.url, models[0]["id"])
    elif args.minerva:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [args.minerva, "serve", "--model", args.model, "--port", str(port),
               "--threads", str(args.threads), "--parallel", "1"]
        with Server("minerva", cmd, base, log_path="/tmp/bench-tool-calls-minerva.log"):
            models = json.load(urllib.request.urlopen(base + "/v1/models"))["data"]
            results["minerva"] = measure("minerva", base, models[0]["id"])
    else:
        sys.exit("--minerva or --url is required")
    if args.llama_server:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [args.llama_server, "-m", args.model, "--port", str(port), "--jinja", "-t", str(args.threads),
               "-np", "1", "-c", "4096"]
        with Server("llama-server", cmd, base, log_path="/tmp/bench-tool-calls-llama.log"):
            results["llama-server"] = measure("llama-server", base, "model")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
