"""SkillRank (after Maurya et al.): a linear map φ from a job-title distribution to a skill
distribution, trained with softmax + KL divergence.

* Input ``x``: a job title as an L1-normalised bag of title terms (unigrams and bigrams).
* Target ``y``: the occupation's skill distribution (essential links weigh ``essential_weight``,
  optional ``optional_weight``; normalised to sum 1).
* Each epoch shows every occupation once, through one of its titles drawn at random.
* Model: ``softmax(x φ + b)`` with φ linear and factorised as ``U V`` (rank ``dim``) so it fits
  in memory for a 10k-term × 13k-skill map; it stays linear. ``KL(y ‖ p)`` loss, Adam,
  minibatches of 1,000, early stopping on a validation split of occupations.
* ``job2vec``: an occupation's ``x U`` (its title terms through φ's rows); ``skill2vec``: the
  columns of ``V``. Top skills per occupation come from ``softmax(x φ + b)``.

Occupations are split into train / validation / test; every title (preferred and alternate) of
an occupation is a training example. Held-out recall is measured on test occupations, whose
titles and skills were never seen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autocoder.taxonomy.model import Taxonomy

log = logging.getLogger(__name__)


@dataclass
class SkillRankData:
    titles: list[str]  # one example per title
    codes: list[str]  # the title's occupation
    skill_uris: list[str]
    skill_labels: list[str]
    targets: dict[str, dict[int, float]]  # code -> {skill index: weight}


def skillrank_data(
    taxonomy: Taxonomy, *, essential_weight: float = 1.0, optional_weight: float = 0.5
) -> SkillRankData:
    """Titles and skill targets of every occupation with at least one skill link."""
    uris: dict[str, int] = {}
    labels: list[str] = []
    titles, codes = [], []
    targets: dict[str, dict[int, float]] = {}
    for occ in taxonomy.leaves():
        if not occ.skills:
            continue
        weights: dict[int, float] = {}
        for link in occ.skills:
            if link.skill_id not in uris:
                uris[link.skill_id] = len(labels)
                skill = taxonomy.skills.get(link.skill_id)
                labels.append(skill.label if skill is not None else link.label)
            w = essential_weight if link.relation == "essential" else optional_weight
            idx = uris[link.skill_id]
            weights[idx] = max(weights.get(idx, 0.0), w)
        targets[occ.code] = weights
        for title in dict.fromkeys([occ.title, *occ.alt_titles]):
            titles.append(title)
            codes.append(occ.code)
    if not targets:
        raise ValueError(f"taxonomy {taxonomy.name} has no occupation–skill links to learn from")
    return SkillRankData(titles, codes, list(uris), labels, targets)


def split_codes(
    codes: Sequence[str], *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, str]:
    """Occupation → ``train``/``val``/``test`` (a random split of occupations)."""
    unique = sorted(set(codes))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_val = int(round(len(unique) * val_fraction))
    n_test = int(round(len(unique) * test_fraction))
    out = {}
    for rank, i in enumerate(order):
        out[unique[i]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out


class SkillRank:
    """Estimator: ``fit(titles, codes, targets)``; ``predict_proba(titles)`` → skill distribution.

    ``classes_`` are the skill URIs. ``fit`` takes a validation split for early stopping.
    """

    def __init__(
        self,
        *,
        dim: int = 128,
        batch_size: int = 1000,
        lr: float = 0.05,
        max_epochs: int = 100,
        patience: int = 5,
        min_df: int = 1,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.batch_size = batch_size
        self.lr = lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_df = min_df
        self.seed = seed

    def _x(self, titles: Sequence[str]) -> Any:
        """Titles → L1-normalised sparse term rows (scipy CSR)."""
        from sklearn.preprocessing import normalize

        x = self.vectorizer_.transform(list(titles)).astype(np.float32)
        return normalize(x, norm="l1").tocsr()

    @staticmethod
    def _torch_sparse(x: Any) -> Any:
        import torch

        coo = x.tocoo()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        return torch.sparse_coo_tensor(
            idx, torch.from_numpy(coo.data), coo.shape, check_invariants=False
        ).coalesce()

    def _y(self, codes: Sequence[str], targets: dict[str, dict[int, float]]) -> Any:
        import torch

        y = np.zeros((len(codes), len(self.classes_)), dtype=np.float32)
        for r, code in enumerate(codes):
            for j, w in targets[code].items():
                y[r, j] = w
        y /= np.maximum(y.sum(axis=1, keepdims=True), 1e-9)
        return torch.from_numpy(y)

    def fit(
        self,
        titles: Sequence[str],
        codes: Sequence[str],
        targets: dict[str, dict[int, float]],
        skill_uris: Sequence[str],
        *,
        val: tuple[Sequence[str], Sequence[str]] | None = None,
        show_progress: bool = False,
    ) -> SkillRank:
        import torch
        from sklearn.feature_extraction.text import CountVectorizer
        from tqdm.auto import tqdm

        torch.manual_seed(self.seed)
        self.classes_ = np.asarray(skill_uris, dtype=object)
        self.vectorizer_ = CountVectorizer(ngram_range=(1, 2), min_df=self.min_df, binary=True)
        self.vectorizer_.fit(list(titles))
        train = (self._x(titles), list(codes))
        check = (self._x(val[0]), list(val[1])) if val and len(val[0]) else train
        self.u_ = torch.nn.Parameter(torch.randn(train[0].shape[1], self.dim) * 0.1)
        self.v_ = torch.nn.Parameter(torch.randn(self.dim, len(self.classes_)) * 0.1)
        self.b_ = torch.nn.Parameter(torch.zeros(len(self.classes_)))
        opt = torch.optim.Adam([self.u_, self.v_, self.b_], lr=self.lr)
        best, best_state, wait = float("inf"), None, 0
        self.history_: list[dict[str, float]] = []
        bar = tqdm(range(self.max_epochs), desc="skillrank", disable=not show_progress)
        for epoch in bar:
            train_loss = self._epoch(train, targets, opt, epoch)
            val_loss = self._kl(check, targets)
            self.history_.append({"epoch": epoch, "train_kl": train_loss, "val_kl": val_loss})
            bar.set_postfix(val_kl=round(val_loss, 4))
            if val_loss < best - 1e-5:
                best, wait = val_loss, 0
                best_state = [p.detach().clone() for p in (self.u_, self.v_, self.b_)]
            else:
                wait += 1
                if wait >= self.patience:
                    break
        if best_state is not None:
            with torch.no_grad():
                for p, s in zip((self.u_, self.v_, self.b_), best_state, strict=True):
                    p.copy_(s)
        self.best_val_kl_ = best
        return self

    def _logits(self, x: Any) -> Any:
        """``x φ + b`` for a scipy CSR batch (φ = U V)."""
        import torch

        return torch.sparse.mm(self._torch_sparse(x), self.u_) @ self.v_ + self.b_

    def _batch_loss(
        self, x: Any, codes: Sequence[str], targets: dict[str, dict[int, float]]
    ) -> Any:
        import torch

        logp = torch.log_softmax(self._logits(x), dim=1)
        return torch.nn.functional.kl_div(logp, self._y(codes, targets), reduction="batchmean")

    def _epoch(
        self,
        data: tuple[Any, list[str]],
        targets: dict[str, dict[int, float]],
        opt: Any,
        epoch: int,
    ) -> float:
        """One pass over the occupations, each seen through one of its titles at random."""
        x, codes = data
        rng = np.random.default_rng(self.seed + epoch)
        rows: dict[str, list[int]] = {}
        for i, code in enumerate(codes):
            rows.setdefault(code, []).append(i)
        order = np.array([r[rng.integers(len(r))] for r in rows.values()])
        order = order[rng.permutation(len(order))]
        total = 0.0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            loss = self._batch_loss(x[idx], [codes[i] for i in idx], targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
        return total / max(1, len(order))

    def _kl(self, data: tuple[Any, list[str]], targets: dict[str, dict[int, float]]) -> float:
        import torch

        x, codes = data
        total = 0.0
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                stop = start + self.batch_size
                loss = self._batch_loss(x[start:stop], codes[start:stop], targets)
                total += float(loss) * (min(stop, x.shape[0]) - start)
        return total / max(1, x.shape[0])

    def predict_proba(self, titles: Sequence[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.softmax(self._logits(self._x(titles)), dim=1).numpy()

    def job2vec(self, titles: Sequence[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.sparse.mm(self._torch_sparse(self._x(titles)), self.u_).numpy()

    def skill2vec(self) -> np.ndarray:
        return self.v_.detach().numpy().T.copy()

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path, *, skill_labels: Sequence[str] = ()) -> Path:
        import torch

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"u": self.u_.detach(), "v": self.v_.detach(), "b": self.b_.detach()},
            directory / "phi.pt",
        )
        meta = {
            "params": {
                k: getattr(self, k)
                for k in ("dim", "batch_size", "lr", "max_epochs", "patience", "min_df", "seed")
            },
            "vocabulary": {t: int(i) for t, i in self.vectorizer_.vocabulary_.items()},
            "classes": list(self.classes_),
            "skill_labels": list(skill_labels),
            "best_val_kl": self.best_val_kl_,
            "history": self.history_,
        }
        (directory / "skillrank.json").write_text(json.dumps(meta))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> tuple[SkillRank, list[str]]:
        import torch
        from sklearn.feature_extraction.text import CountVectorizer

        directory = Path(directory)
        meta_file = directory / "skillrank.json"
        if not meta_file.is_file():
            raise FileNotFoundError(
                f"no SkillRank model at {directory}; train one with `autocoder skills train`"
            )
        meta = json.loads(meta_file.read_text())
        model = cls(**meta["params"])
        model.vectorizer_ = CountVectorizer(
            ngram_range=(1, 2), binary=True, vocabulary=meta["vocabulary"]
        )
        weights = torch.load(directory / "phi.pt", map_location="cpu", weights_only=True)
        model.u_ = torch.nn.Parameter(weights["u"])
        model.v_ = torch.nn.Parameter(weights["v"])
        model.b_ = torch.nn.Parameter(weights["b"])
        model.classes_ = np.asarray(meta["classes"], dtype=object)
        model.best_val_kl_ = meta["best_val_kl"]
        model.history_ = meta["history"]
        return model, list(meta["skill_labels"])


def recall_at_k(proba: np.ndarray, gold: Sequence[set[int]], k: int) -> float:
    """Mean over occupations of |top-K ∩ gold| / min(K, |gold|)."""
    order = np.argsort(-proba, axis=1)[:, :k]
    vals = [len(set(order[i].tolist()) & g) / min(k, len(g)) for i, g in enumerate(gold) if g]
    return float(np.mean(vals)) if vals else float("nan")


def occupation_titles(taxonomy: Taxonomy, code: str) -> str:
    """An occupation's input text: its preferred title (what a job title looks like)."""
    return taxonomy.get(code).title


def tsne_plot(
    vectors: np.ndarray, groups: Sequence[str], path: str | Path, *, seed: int = 0
) -> Path:
    """2-D t-SNE of ``vectors`` coloured by ``groups`` (e.g. ISCO major group), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    perplexity = max(2.0, min(30.0, (len(vectors) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(
        vectors
    )
    fig, ax = plt.subplots(figsize=(9, 7))
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "g": list(groups)})
    for name, part in frame.groupby("g"):
        ax.scatter(part["x"], part["y"], s=6, label=str(name), alpha=0.7)
    ax.legend(title="ISCO major group", markerscale=3, fontsize=7, loc="best")
    ax.set_title("job2vec (SkillRank φ) of occupations, t-SNE")
    ax.set_xticks([])
    ax.set_yticks([])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def train_skillrank(
    taxonomy: Taxonomy,
    output_dir: str | Path,
    *,
    model: SkillRank | None = None,
    plot: bool = True,
    ks: Sequence[int] = (10, 20),
    show_progress: bool = False,
) -> dict[str, Any]:
    """Split occupations, fit φ with early stopping, report held-out recall, save, plot."""
    data = skillrank_data(taxonomy)
    split = split_codes(data.codes)
    part = {
        name: [i for i, c in enumerate(data.codes) if split[c] == name] for name in split.values()
    }
    pick = lambda idx, seq: [seq[i] for i in idx]  # noqa: E731
    est = model if model is not None else SkillRank()
    est.fit(
        pick(part.get("train", []), data.titles),
        pick(part.get("train", []), data.codes),
        data.targets,
        data.skill_uris,
        val=(pick(part.get("val", []), data.titles), pick(part.get("val", []), data.codes)),
        show_progress=show_progress,
    )
    test_codes = sorted({c for c, s in split.items() if s == "test"})
    report: dict[str, Any] = {
        "occupations": len(split),
        "skills": len(data.skill_uris),
        "titles": len(data.titles),
        "epochs": len(est.history_),
        "best_val_kl": round(est.best_val_kl_, 4),
        "test_occupations": len(test_codes),
    }
    if test_codes:
        proba = est.predict_proba([occupation_titles(taxonomy, c) for c in test_codes])
        gold = [set(data.targets[c]) for c in test_codes]
        train_codes = [c for c, s in split.items() if s == "train"]
        popularity = np.zeros(len(data.skill_uris))
        for c in train_codes:
            for j in data.targets[c]:
                popularity[j] += 1
        for k in ks:
            report[f"recall@{k}"] = round(recall_at_k(proba, gold, k), 4)
            report[f"popularity_recall@{k}"] = round(
                recall_at_k(np.tile(popularity, (len(gold), 1)), gold, k), 4
            )
    out = est.save(output_dir, skill_labels=data.skill_labels)
    if plot:
        codes = sorted(split)
        vecs = est.job2vec([occupation_titles(taxonomy, c) for c in codes])
        groups = [taxonomy.parent(c, 1) or "?" for c in codes]
        report["tsne_plot"] = str(tsne_plot(vecs, groups, out / "job2vec_tsne.png"))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def top_skills(
    model: SkillRank, skill_labels: Sequence[str], text: str, top: int = 10
) -> list[tuple[str, str, float]]:
    """``(uri, label, probability)`` of the ``top`` skills φ gives a job title."""
    proba = model.predict_proba([text])[0]
    order = np.argsort(-proba)[:top]
    return [(str(model.classes_[j]), skill_labels[j], float(proba[j])) for j in order]
