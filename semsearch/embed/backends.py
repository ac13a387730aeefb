"""Embedding passages with engines faster than torch: onnxruntime and OpenVINO.

sentence-transformers (torch) is the reference and the default backend. The
others run the index's own ONNX export of the model (see `embed.export`:
pooling and normalisation inside the graph, checked against
sentence-transformers to cosine >= 0.9999 when it was made):

- ``onnx``, fp32: onnxruntime on that graph;
- ``openvino``, fp32: OpenVINO on that graph, asked for f32 arithmetic (on
  CPUs with bf16 it would otherwise pick bf16, slower here and less exact);
- ``openvino``, int8: the graph statically quantised with NNCF, calibrated on
  passages of the collection being indexed (no download). The quantised model
  is saved in the index folder under a name holding its hash and reused for
  every later addition, so all vectors of an index come from the same model.

Queries always use the fp32 export: int8 only changes how passages are
embedded, and an index refuses vectors from another backend or precision.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import IndexCorruptError, ModelLoadError, UsageError
from ..storage import integrity
from . import export, normalize, onnx, prompts_of
from .prompts import Prompts

Backend = Literal["torch", "onnx", "openvino"]
Precision = Literal["fp32", "int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "openvino")
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
CALIBRATION_PASSAGES = 150
_INSTALL_HINT = "pip install 'semsearch[openvino]' (or `make install`)"
_INT8_FILE = re.compile(r"^embed-model-int8-[0-9a-f]{16}\.(xml|bin)$")


def check_choice(
    backend: str | None, precision: str | None
) -> tuple[Backend | None, Precision | None]:
    """Refuse a backend or precision semsearch does not offer, naming the ones it does;
    returns them as the values they are (None stays None)."""
    backend_ = next((b for b in BACKENDS if b == backend), None)
    precision_ = next((p for p in PRECISIONS if p == precision), None)
    if backend is not None and backend_ is None:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if precision is not None and precision_ is None:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if precision == "int8" and backend != "openvino":
        raise UsageError(
            "int8 is offered with --backend openvino (static quantisation calibrated on your "
            f"passages); the {backend or 'torch'} backend runs fp32"
        )
    return backend_, precision_


class ExportedEmbedder:
    """Embeds passages on onnxruntime or OpenVINO; the model itself gives name and tokens.

    `prepare` must be called with the index folder before `embed`.
    """

    def __init__(
        self,
        reference: Any,
        backend: str,
        precision: str,
        folder: str | None = None,
        known: export.QueryModel | None = None,
    ) -> None:
        self.reference = reference  # the SentenceTransformerEmbedder of the same model
        # An index's checked export of that model: its dimension, limit and tokenizer
        # answer without loading torch (a few seconds) on every incremental add.
        self._known = known
        self._counter: Any = None
        if known is not None and folder is not None:
            self._counter, _ = onnx.load_tokenizer(
                os.path.join(folder, known.tokenizer), known.max_tokens
            )
            self._counter.no_truncation()
        self.name: str = reference.name
        self.backend = backend
        self.precision = precision
        self._run: Callable[[dict[str, npt.NDArray[np.int64]]], npt.NDArray[np.float32]] | None
        self._run = None
        self._tokenizer: Any = None
        self._pad_id = 0
        self.batch_size = 16
        self._width_multiple = 1
        self.threads: int | None = None  # None: every core (a Ray worker sets its share)
        # (folder, query model, int8 model entry) once `prepare` has loaded the engine
        self.prepared: tuple[str, export.QueryModel, dict[str, Any] | None] | None = None

    @property
    def fingerprint(self) -> str:
        return str(self.reference.fingerprint)

    @property
    def prompts(self) -> Prompts:
        return prompts_of(self.reference)

    @property
    def dimension(self) -> int:
        if self._known is not None:
            return self._known.dimension
        return int(self.reference.dimension)

    @property
    def max_tokens(self) -> int:
        if self._known is not None:
            return self._known.max_tokens
        return int(self.reference.max_tokens)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._counter is not None:
            encs = self._counter.encode_batch(list(texts), add_special_tokens=False)
            return [len(e.ids) for e in encs]
        return list(self.reference.count_tokens(texts))

    def counting_tokenizer(self) -> Any:
        """The fast tokenizer that `count_tokens` counts with (None: the model's own)."""
        if self._counter is not None:
            return self._counter
        return self.reference._counting_tokenizer()

    # --- the engine

    def prepare(
        self,
        folder: str,
        query_model: export.QueryModel | None,
        recorded: dict[str, Any] | None,
        calibration: Sequence[str],
    ) -> dict[str, Any] | None:
        """Load the engine; returns what the manifest records of its model (int8 only).

        ``recorded`` is the index's int8 model when it has one (reused as is);
        otherwise a new one is calibrated on ``calibration``.
        """
        if query_model is None:
            raise ModelLoadError(
                f"model {self.name} could not be exported to ONNX, so the {self.backend} backend "
                "cannot run it: index with --backend torch"
            )
        onnx_path = os.path.join(folder, query_model.file)
        self._tokenizer, self._pad_id = onnx.load_tokenizer(
            os.path.join(folder, query_model.tokenizer), query_model.max_tokens
        )
        if self.backend == "onnx":
            encoder = onnx.OnnxEncoder(
                onnx_path,
                os.path.join(folder, query_model.tokenizer),
                query_model.max_tokens,
                threads=self.threads,
            )
            self._run = encoder.run
            self.prepared = (folder, query_model, None)
            return None
        ov = _import_openvino()
        core = ov.Core()
        entry: dict[str, Any] | None = None
        if self.precision == "int8":
            if recorded:
                model = core.read_model(_checked_int8(folder, recorded))
                entry = recorded
            else:
                model, entry = self._quantize(ov, core.read_model(onnx_path), folder, calibration)
        else:
            model = core.read_model(onnx_path)
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        output = compiled.output(0)

        def run(feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
            return np.asarray(request.infer(feeds)[output], dtype=np.float32)

        self._run = run
        self.batch_size = 8  # small batches stay in cache: measured fastest here
        self._width_multiple = 16  # few distinct shapes: OpenVINO prepares each one once
        self.prepared = (folder, query_model, entry)
        return entry

    def _quantize(
        self, ov: Any, model: Any, folder: str, texts: Sequence[str]
    ) -> tuple[Any, dict[str, Any]]:
        """Static int8 with NNCF, calibrated on up to 150 passages spread over ``texts``.

        Settings measured on SciFact test (dense nDCG@10, torch 0.6618): 150
        passages with SmoothQuant and without bias correction 0.6617, in 9 s on
        two cores; 300 passages with bias correction 0.6573 in 18 s.
        """
        import logging

        try:
            with _without_torch():
                import nncf
        except ImportError as exc:
            raise ModelLoadError(f"int8 needs NNCF: {_INSTALL_HINT}") from exc

        step = max(1, len(texts) // CALIBRATION_PASSAGES)
        sample = list(texts[::step][:CALIBRATION_PASSAGES]) + list(export._CHECK_TEXTS)
        items = []
        for text in sample:
            enc = self._tokenizer.encode(text)
            ids = np.asarray([enc.ids], dtype=np.int64)
            items.append(
                {
                    "input_ids": ids,
                    "attention_mask": np.ones_like(ids),
                    "token_type_ids": np.zeros_like(ids),
                }
            )
        nncf.set_log_level(logging.ERROR)
        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
        with quiet[0], quiet[1], _without_torch():
            quantized = nncf.quantize(
                model,
                nncf.Dataset(items),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(items),
                advanced_parameters=nncf.AdvancedQuantizationParameters(
                    disable_bias_correction=True
                ),
            )
        tmp_xml = os.path.join(folder, f"embed-model-int8.tmp-{os.getpid()}.xml")
        tmp_bin = tmp_xml[: -len(".xml")] + ".bin"
        try:
            # OpenVINO reports a failed write as a RuntimeError
            with integrity.writing(folder, "the int8 model", engine=(RuntimeError,)):
                ov.save_model(quantized, tmp_xml, compress_to_fp16=False)
                digest = integrity.sha256_file(tmp_bin)
                xml = f"embed-model-int8-{digest[:16]}.xml"
                weights = xml[: -len(".xml")] + ".bin"
                # the .xml names its weights by file name: keep the pair's stem together
                for tmp, final in ((tmp_bin, weights), (tmp_xml, xml)):
                    integrity.durable_replace(tmp, os.path.join(folder, final))
        finally:
            for tmp in (tmp_xml, tmp_bin):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return quantized, {
            "file": xml,
            "weights": weights,
            "sha256": digest,
            "xml_sha256": integrity.sha256_file(os.path.join(folder, xml)),
            "calibration_passages": len(sample),
            "quantizer": f"nncf {nncf.__version__}",
        }

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> npt.NDArray[np.float32]:
        if self._run is None:
            raise RuntimeError("ExportedEmbedder.prepare() must be called before embed()")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = onnx.encode_batches(
            self._tokenizer,
            self._pad_id,
            texts,
            batch_size,
            self._run,
            progress,
            width_multiple=self._width_multiple,
        )
        return normalize(vecs)


def prune(folder: str, keep: dict[str, Any] | None) -> None:
    """Delete int8 model files of earlier builds that the committed manifest no longer names."""
    wanted = {keep.get("file"), keep.get("weights")} if keep else set()
    for name in os.listdir(folder):
        if _INT8_FILE.match(name) and name not in wanted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))


def _checked_int8(folder: str, recorded: dict[str, Any]) -> str:
    """The path of an index's int8 model, after checking both files are the ones recorded."""
    try:
        xml = os.path.join(folder, str(recorded["file"]))
        weights = os.path.join(folder, str(recorded["weights"]))
        whole = integrity.sha256_file(xml) == recorded["xml_sha256"] and (
            integrity.sha256_file(weights) == recorded["sha256"]
        )
    except (KeyError, OSError):
        whole = False
    if not whole:
        raise IndexCorruptError(
            f"the int8 model of the index in {folder} ({recorded.get('file', '?')}) is missing or "
            f"damaged: rebuild it with `semsearch index --rebuild --index {folder} PATH`"
        )
    return xml


@contextlib.contextmanager
def _without_torch() -> Iterator[None]:
    """Make ``import torch`` fail, as on an install without it, unless torch is loaded already.

    NNCF imports torch when it is installed (seconds) and probes every model
    with it, though it needs none for an OpenVINO model; it supports installs
    without torch, which is what it sees here.
    """
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # "import torch" raises ImportError
    try:
        yield
    finally:
        if sys.modules.get("torch", False) is None:
            del sys.modules["torch"]


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ModelLoadError(f"the openvino backend needs OpenVINO: {_INSTALL_HINT}") from exc
    return openvino
