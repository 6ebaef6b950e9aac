"""Runs the `openai` SDK against the EPP's router mode and prints what it got, as JSON.

    python openai_client.py http://127.0.0.1:PORT MODEL
"""

import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)
messages = [{"role": "user", "content": "Hello there"}]
out = {}

raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=5)
chat = raw.parse()
out["chat_destination"] = raw.headers.get("x-gateway-destination-endpoint")
out["chat_content"] = chat.choices[0].message.content
out["chat_completion_tokens"] = chat.usage.completion_tokens

stream = client.chat.completions.create(model=model, messages=messages, max_tokens=8, stream=True)
deltas = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
out["stream_chunks"] = len(deltas)
out["stream_text"] = "".join(deltas)

completion = client.completions.create(model=model, prompt="Once upon a time", max_tokens=3)
out["completion_text"] = completion.choices[0].text
out["completion_tokens"] = completion.usage.completion_tokens

print(json.dumps(out))
