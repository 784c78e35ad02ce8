"""Conversations rendered by record.py: name -> (messages, tools or None)."""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather forecast for a city. Returns \"sunny\", \"rain\" or <unknown>.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "object",
                        "description": "Where to look, e.g. 北京 or São Paulo",
                        "properties": {
                            "city": {"type": "string"},
                            "country": {"type": "string", "enum": ["CN", "BR", "US"]},
                        },
                        "required": ["city"],
                    },
                    "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 3},
                    "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Full-text search over the user's documents.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Search terms"},
                    "filters": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "value": {"type": ["string", "number", "boolean", "null"]},
                            },
                        },
                    },
                    "limit": {"type": "number", "default": 10.5},
                    "exact": {"type": "boolean", "default": False},
                },
                "required": ["query"],
            },
        },
    },
]

SYSTEM = "You are a helpful assistant."

UNICODE_USER = (
    '你好，世界！🚀 Say "hi" and \'bye\' in <html><b>bold</b></html> & <script>alert(1)</script>;'
    "\ttab, back\\slash,\nnew line, émoji 👩‍💻, Ω≈ç√"
)

CONVERSATIONS = {
    "system_user": (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        None,
    ),
    "multi_turn": (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi there. How can I help?"},
            {"role": "user", "content": "Write a haiku about Rust."},
            {"role": "assistant", "content": "Borrowed, never lost\nlifetimes fold like autumn leaves\nthe compiler smiles"},
            {"role": "user", "content": "Now one about Python."},
        ],
        None,
    ),
    "no_system": (
        [
            {"role": "user", "content": "  Leading and trailing spaces  "},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Thanks"},
        ],
        None,
    ),
    "unicode": (
        [
            {"role": "system", "content": "Réponds en français. 日本語も可。"},
            {"role": "user", "content": UNICODE_USER},
            {"role": "assistant", "content": "好的 👍 — <ok> \"done\""},
            {"role": "user", "content": "再来一次 🙏"},
        ],
        None,
    ),
    "content_parts": (
        [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe "},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                    {"type": "text", "text": "this."},
                ],
            },
            {"role": "assistant", "content": None},
        ],
        None,
    ),
    "think_history": (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is 2+2?"},
            {
                "role": "assistant",
                "content": "<think>\nThe user asks a simple sum.\n</think>\n\n2 + 2 = 4.",
            },
            {"role": "user", "content": "And 3+3?"},
        ],
        None,
    ),
    "bad_alternation": (
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ],
        None,
    ),
    "tools_first_turn": (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Weather in 北京 for 2 days?"},
        ],
        TOOLS,
    ),
    "tools_call": (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Weather in 北京 for 2 days, and find my notes on \"rain\"?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1a2b3c4d5",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": {
                                "location": {"city": "北京", "country": "CN"},
                                "days": 2,
                                "units": "celsius",
                            },
                        },
                    },
                    {
                        "id": "call_9z8y7x6w5",
                        "type": "function",
                        "function": {
                            "name": "search_docs",
                            "arguments": {
                                "query": "rain <notes>",
                                "filters": [{"field": "tag", "value": None}, {"field": "score", "value": 0.75}],
                                "limit": 5,
                                "exact": True,
                            },
                        },
                    },
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1a2b3c4d5",
                "name": "get_weather",
                "content": '{"forecast": ["sunny", "rain"], "temp_c": 21.5}',
            },
            {
                "role": "tool",
                "tool_call_id": "call_9z8y7x6w5",
                "name": "search_docs",
                "content": "No notes found.",
            },
            {"role": "assistant", "content": "北京: sunny, then rain (21.5 °C). No notes matched \"rain\"."},
            {"role": "user", "content": "Thanks!"},
        ],
        TOOLS,
    ),
    # One call with a 9-character id: Llama 3.x accepts only single calls, Mistral only such ids.
    "tools_single_call": (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Weather in São Paulo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "a1b2c3d4e",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": {"location": {"city": "São Paulo", "country": "BR"}, "days": 1},
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": "get_weather", "content": "{\"forecast\": [\"rain\"]}"},
            {"role": "assistant", "content": "Rain expected in São Paulo."},
            {"role": "user", "content": "Thanks"},
        ],
        TOOLS,
    ),
}
