"""An optional script writer: any OpenAI-compatible chat endpoint (issue 5).

Configured in afx.yaml (`script.llm`) or the environment (AFX_LLM_BASE_URL, AFX_LLM_MODEL,
AFX_LLM_API_KEY, AFX_LLM_TIMEOUT). It is the user's own endpoint (often a local one), so
it is not held to the fetch address policy. Any failure is an LLMError; the caller falls
back to the offline templates with a warning.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class LLMError(Exception):
    pass


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 30.0

    def fingerprint(self) -> dict[str, Any]:
        """What changes the script (never the key)."""
        return {"base_url": self.base_url, "model": self.model}


def config_from(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> LLMConfig | None:
    environ = os.environ if environ is None else environ
    block = ((config.get("script") or {}).get("llm") or {}) if config else {}
    base = environ.get("AFX_LLM_BASE_URL") or block.get("base_url")
    model = environ.get("AFX_LLM_MODEL") or block.get("model")
    if not base or not model:
        return None
    key = environ.get(block.get("api_key_env", "AFX_LLM_API_KEY"), "") or environ.get("AFX_LLM_API_KEY", "")
    timeout = float(environ.get("AFX_LLM_TIMEOUT") or block.get("timeout") or 30)
    return LLMConfig(base.rstrip("/"), model, key, timeout)


def write_script(cfg: LLMConfig, topic: str, tone: str, words: int, context: str = "") -> str:
    import urllib.error
    import urllib.request

    prompt = (f"Write a voiceover script for a short video.\nTopic: {topic}\nTone: {tone or 'neutral'}\n"
              f"Length: about {words} words, spoken aloud.\nStart with a hook line and end with a call to "
              f"follow.\n{('What the footage says: ' + context) if context else ''}\n"
              "Reply with the script text only: no title, no stage directions, no markdown.")
    body = json.dumps({"model": cfg.model, "temperature": 0.7, "messages": [
        {"role": "system", "content": "You write tight, spoken voiceover scripts for short-form video."},
        {"role": "user", "content": prompt}]}).encode()
    headers = {"Content-Type": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    request = urllib.request.Request(f"{cfg.base_url}/chat/completions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=cfg.timeout) as response:  # noqa: S310 - user's endpoint
            data = json.loads(response.read(2_000_000))
        text = data["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as exc:
        raise LLMError(f"{cfg.base_url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise LLMError(f"{cfg.base_url} did not answer ({getattr(exc, 'reason', exc)})") from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"{cfg.base_url} sent no script ({type(exc).__name__})") from None
    text = re.sub(r"[*_#`>]+", "", str(text)).strip()
    text = re.sub(r"^\s*(script|voiceover)\s*:\s*", "", text, flags=re.I)
    if len(text.split()) < 3:
        raise LLMError(f"{cfg.base_url} sent an empty script")
    return text[:20000]
