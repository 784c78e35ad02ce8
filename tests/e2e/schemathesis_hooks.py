"""Schemathesis hooks for tests/e2e/test_openapi.py: Ollama's streamed answers
(`application/x-ndjson`, one JSON object a line) are read line by line; every line must be a JSON
object, and the first one (a chunk, or the error that ended the stream at once) is what
schemathesis checks against the documented line schema; the final object's shape is the same
as the `stream: false` answer's, which schemathesis checks as JSON."""
import json

import schemathesis


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx, response):
    lines = [json.loads(line) for line in response.content.decode("utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError("an empty application/x-ndjson answer")
    for line in lines:
        if not isinstance(line, dict):
            raise ValueError(f"an application/x-ndjson line that is not an object: {line!r}")
    return lines[0]
