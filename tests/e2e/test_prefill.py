"""Assistant prefill: a last message from the assistant is continued, not answered, as
llama-server does by default and Anthropic's API documents. The continuation equals what
/v1/completions gives for the same prompt written out by hand (Qwen's ChatML template), on the
OpenAI, Anthropic, Ollama and Responses routes alike."""
import anthropic
import ollama

from conftest import MODEL_ID

ASK = "List three fruits, separated by commas."
PREFILL = "Sure! Here they are: apple,"
# Qwen2.5's chat template with its default system prompt, then the prefill as it is.
RAW = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
       f"<|im_start|>user\n{ASK}<|im_end|>\n<|im_start|>assistant\n{PREFILL}")
N = 12


def test_openai_chat_continues_the_assistant_message(client):
    reference = client.completions.create(model=MODEL_ID, prompt=RAW, max_tokens=N, temperature=0,
                                          extra_body={"cache_prompt": False})
    chat = client.chat.completions.create(model=MODEL_ID, max_tokens=N, temperature=0,
                                          extra_body={"cache_prompt": False},
                                          messages=[{"role": "user", "content": ASK},
                                                    {"role": "assistant", "content": PREFILL}])
    assert chat.choices[0].message.content == reference.choices[0].text
    assert chat.usage.prompt_tokens == reference.usage.prompt_tokens
    assert not chat.choices[0].message.content.startswith(("Sure", "<|im_start|>"))


def test_anthropic_ollama_and_responses_continue_it_too(client, server):
    reference = client.completions.create(model=MODEL_ID, prompt=RAW, max_tokens=N, temperature=0,
                                          extra_body={"cache_prompt": False}).choices[0].text
    ac = anthropic.Anthropic(base_url=server, api_key="x", max_retries=0, timeout=120)
    m = ac.messages.create(model=MODEL_ID, max_tokens=N, extra_body={"temperature": 0, "cache_prompt": False},
                           messages=[{"role": "user", "content": ASK}, {"role": "assistant", "content": PREFILL}])
    assert "".join(b.text for b in m.content if b.type == "text") == reference
    oc = ollama.Client(host=server)
    o = oc.chat(model=MODEL_ID, options={"temperature": 0, "num_predict": N},
                messages=[{"role": "user", "content": ASK}, {"role": "assistant", "content": PREFILL}])
    assert o.message.content == reference
    r = client.responses.create(model=MODEL_ID, max_output_tokens=N, temperature=0,
                                extra_body={"cache_prompt": False},
                                input=[{"role": "user", "content": ASK},
                                       {"role": "assistant", "content": PREFILL}])
    assert r.output_text == reference

