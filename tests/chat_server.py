"""A small OpenAI-compatible chat-completions server on loopback that really generates with a local
model, with fault injection for tests: 503 for the first requests, 400 for marked prompts, delays."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback import serve


class ChatServer:
    """Serve POST /v1/chat/completions from the model in model_dir at `self.url` (127.0.0.1, a free port)."""

    def __init__(self, model_dir):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self._model_lock, self._lock = threading.Lock(), threading.Lock()
        self.reset()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = server.handle(self.path, body)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client is gone (killed)
                    pass

            def log_message(self, *args):
                pass

        self.httpd, self.url = serve(Handler)

    def reset(self, *, fail_first: int = 0, refuse: str | None = None, delay: float = 0.0,
              reasoning: str | None = None) -> None:
        """New faults and zeroed counters: the first `fail_first` requests get 503, prompts containing
        `refuse` get 400, every reply waits `delay` seconds, `reasoning` is sent as reasoning_content."""
        self.fail_first, self.refuse, self.delay, self.reasoning = fail_first, refuse, delay, reasoning
        self.requests, self.served, self.in_flight, self.max_in_flight = 0, [], 0, 0

    def complete(self, prompt: str, max_tokens: int, temperature: float) -> tuple[str, str]:
        """The model's completion of one user turn (greedy at temperature 0) and its finish reason."""
        import torch

        text = self.tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                            add_generation_prompt=True)
        enc = self.tok(text, return_tensors="pt", add_special_tokens=False)
        sample = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._model_lock, torch.inference_mode():
            ids = self.model.generate(**enc, max_new_tokens=max_tokens, pad_token_id=self.tok.pad_token_id,
                                      **sample)[0, enc["input_ids"].shape[1]:].tolist()
        eos = self.tok.eos_token_id
        stop = ids.index(eos) + 1 if eos in ids else len(ids)
        return self.tok.decode(ids[:stop], skip_special_tokens=True), "stop" if eos in ids else "length"

    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failing = self.requests <= self.fail_first
        try:
            time.sleep(self.delay)
            if path != "/v1/chat/completions":
                return 404, {"error": {"message": f"no route {path}"}}
            if failing:
                return 503, {"error": {"message": "overloaded"}}
            if self.refuse and self.refuse in prompt:
                return 400, {"error": {"message": "prompt refused"}}
            text, finish = self.complete(prompt, body.get("max_tokens", 16), body.get("temperature", 0.0))
            message = {"role": "assistant", "content": text}
            if self.reasoning:
                message["reasoning_content"] = self.reasoning
            with self._lock:
                self.served.append((body.get("model"), prompt))
            return 200, {"object": "chat.completion", "model": body.get("model") or "toy",
                         "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
