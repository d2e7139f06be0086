# ruff: noqa: E402  (thread settings must precede the numeric imports)
"""Shared pieces of the quality study: single-threaded setup, data loaders, folds, metrics,
base models (logistic regression with inner-CV C, torch MLP, gradient boosting).

Everything here is self-contained (it does not import mer_ensemble). Only labelled rows
are loaded; no truth file and no test label is ever read.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore", message="The least populated class")
warnings.filterwarnings("ignore", category=UserWarning)

HERE = Path(__file__).resolve().parent
DATA = HERE.resolve().parents[2] / "shared" / "data"  # ../shared/data beside the repository
OUTDIR = HERE / "out"
OUTDIR.mkdir(exist_ok=True)


# ----------------------------------------------------------------------------- metrics
def f1_from_labels(y, pred, n_classes, average="weighted"):
    """Weighted / macro F1 with scikit-learn semantics (zero_division=0)."""
    y = np.asarray(y)
    pred = np.asarray(pred)
    tp = np.bincount(y[y == pred], minlength=n_classes).astype(float)
    npred = np.bincount(pred, minlength=n_classes).astype(float)
    sup = np.bincount(y, minlength=n_classes).astype(float)
    den = npred + sup
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
    if average == "weighted":
        return float((f1 * sup).sum() / sup.sum())
    present = (sup > 0) | (npred > 0)
    return float(f1[present].mean())


def wf1(y, proba_or_pred, n_classes=None):
    """Weighted F1 of labels or of the argmax of probabilities ``(n, C)``."""
    a = np.asarray(proba_or_pred)
    if a.ndim == 2:
        n_classes = a.shape[1] if n_classes is None else n_classes
        a = a.argmax(1)
    if n_classes is None:
        n_classes = int(max(a.max(), np.max(y)) + 1)
    return f1_from_labels(y, a, n_classes)


def wf1_batch(y, preds, n_classes):
    """Weighted F1 of many label vectors at once: ``preds`` ``(G, n)`` → ``(G,)``."""
    preds = np.asarray(preds)
    G, n = preds.shape
    off = (np.arange(G) * n_classes)[:, None]
    hit = preds == y[None, :]
    tp = np.bincount((preds + off)[hit], minlength=G * n_classes).reshape(G, n_classes)
    npred = np.bincount((preds + off).ravel(), minlength=G * n_classes).reshape(G, n_classes)
    sup = np.bincount(y, minlength=n_classes).astype(float)
    den = npred + sup[None, :]
    f1 = np.divide(2 * tp, den, out=np.zeros(den.shape), where=den > 0)
    return (f1 * sup[None, :]).sum(1) / sup.sum()


def fold_scores(y, proba, folds):
    """Per-fold weighted F1 ``(K,)`` of ``proba`` ``(n, C)``."""
    C = proba.shape[1]
    return np.array([wf1(y[folds == k], proba[folds == k], C) for k in np.unique(folds)])


def joint(e, s):
    return 2 * e * s / (e + s)


# ----------------------------------------------------------------------------- folds
def make_folds(y, groups=None, k=5, seed=0):
    """Project-style folds: StratifiedGroupKFold(shuffle, seed) when grouped, else StratifiedKFold.

    With few groups StratifiedGroupKFold ignores its seed (EmoDB's 8 speakers give the same
    folds for every seed), so for grouped data and seed >= 1 the groups are instead assigned in
    a random order, each to the fold with the fewest rows so far (``random_group_folds``)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is not None and seed >= 1:
        return random_group_folds(groups, k, seed)
    fold = np.empty(len(y), dtype=np.int64)
    if groups is not None:
        sp = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)
    else:
        sp = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    for j, (_, va) in enumerate(sp):
        fold[va] = j
    return fold


def random_group_folds(groups, k, seed):
    """Random grouped folds of balanced size: groups in random order, each to the smallest fold."""
    rng = np.random.default_rng(seed)
    ug, inv, cnt = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(ug))
    size = np.zeros(k)
    gf = np.empty(len(ug), dtype=np.int64)
    for g in order:
        j = int(np.argmin(size + rng.random(k) * 1e-6))
        gf[g] = j
        size[j] += cnt[g]
    return gf[inv]


def inner_folds(y, groups=None, k=3, seed=0):
    """Fold ids for an inner CV on training rows (grouped when groups are given)."""
    if groups is not None and len(np.unique(groups)) < k:
        groups = None
    return make_folds(y, groups, k, seed)


def holdout_split(y, groups=None, frac=0.15, seed=0):
    """Boolean mask of an inner early-stopping holdout (~frac of rows; grouped/stratified)."""
    k = max(2, int(round(1 / frac)))
    if groups is not None and len(np.unique(groups)) < k:
        k = max(2, len(np.unique(groups)))
    f = inner_folds(y, groups, k, seed)
    return f == 0


# ----------------------------------------------------------------------------- data
class Setting:
    """One labelled dataset: features {name: (n, D)}, modality {name: modality},
    targets {name: int labels (n,)}, classes {target: list}, groups (n,) or None, speaker or None."""

    def __init__(self, name, features, modality, targets, classes, groups=None, speaker=None):
        self.name, self.features, self.modality = name, features, modality
        self.targets, self.classes, self.groups, self.speaker = targets, classes, groups, speaker
        self.n = len(next(iter(targets.values())))

    def concat(self, names):
        return np.concatenate([self.features[f] for f in names], axis=1)


def _load_npy(folder, names, pool=False):
    arrs = []
    for n in names:
        a = np.load(folder / f"{n}.npy").astype(np.float32)
        if a.ndim == 2:
            a = a.mean(0)
        arrs.append(a)
    return np.stack(arrs)


def _cached(key, fn):
    path = OUTDIR / "cache" / f"{key}.npz"
    path.parent.mkdir(exist_ok=True)
    if path.exists():
        with np.load(path, allow_pickle=True) as z:
            return {k: z[k] for k in z.files}
    d = fn()
    np.savez(path, **d)
    return d


def load_emodb():
    root = DATA / "emodb"
    lab = pd.read_csv(root / "label-train.csv", dtype={"speaker": str})
    feats = ["whisper-tiny-UTT", "mfcc-UTT", "minilm-UTT"]
    d = _cached("emodb", lambda: {f: _load_npy(root / "features" / f, lab["name"]) for f in feats})
    classes = sorted(lab["discrete"].unique())
    y = lab["discrete"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    spk = lab["speaker"].to_numpy()
    return Setting("emodb", {f: d[f] for f in feats},
                   {"whisper-tiny-UTT": "audio", "mfcc-UTT": "audio", "minilm-UTT": "text"},
                   {"discrete": y}, {"discrete": classes}, groups=spk, speaker=spk)


def load_meld():
    root = DATA / "meld"
    lab = pd.read_csv(root / "labels.csv")
    lab = lab[lab["split"].isin(["train", "dev"])].reset_index(drop=True)
    d = _cached("meld", lambda: {"minilm-UTT": _load_npy(root / "features" / "minilm-UTT", lab["name"])})
    targets, classes = {}, {}
    for t in ("emotion", "sentiment"):
        classes[t] = sorted(lab[t].unique())
        targets[t] = lab[t].map({c: i for i, c in enumerate(classes[t])}).to_numpy()
    return Setting("meld", {"minilm-UTT": d["minilm-UTT"]}, {"minilm-UTT": "text"}, targets, classes,
                   groups=lab["dialogue"].to_numpy(), speaker=lab["speaker"].to_numpy())


def load_demo_mer():
    root = HERE / "demo-mer"
    lab = pd.read_csv(root / "label-disdim.csv")
    feats = {"chinese-hubert-large-UTT": "audio", "chinese-roberta-wwm-ext-large-UTT": "text",
             "clip-vit-base-patch32-UTT": "video"}
    d = _cached("demo_mer", lambda: {f: _load_npy(root / "features" / f, lab["name"]) for f in feats})
    classes = sorted(lab["discrete"].unique())
    y = lab["discrete"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return Setting("demo_mer", {f: d[f] for f in feats}, feats, {"discrete": y}, {"discrete": classes})


def load_demo_meiju():
    root = HERE / "demo-meiju"
    rows = []
    for fn in ("Training_files.txt", "Validation_files.txt"):
        for line in (root / fn).read_text().split("\n"):
            if line.strip():
                f, e, i = line.split()
                rows.append((f.rsplit(".", 1)[0], e, i))
    lab = pd.DataFrame(rows, columns=["name", "emotion", "intent"])
    feats = {"hubert-large-FRA": "audio", "roberta-large-FRA": "text", "clip-vit-base-FRA": "video"}
    d = _cached("demo_meiju", lambda: {f: _load_npy(root / "features" / f, lab["name"]) for f in feats})
    targets, classes = {}, {}
    for t in ("emotion", "intent"):
        classes[t] = sorted(lab[t].unique())
        targets[t] = lab[t].map({c: i for i, c in enumerate(classes[t])}).to_numpy()
    return Setting("demo_meiju", {f: d[f] for f in feats}, feats, targets, classes)


# ----------------------------------------------------------------------------- synthetic
SYNTH = {
    # name: (n, classes, priors power, blocks [(dim, strength, nonlinear, shared-noise id)], groups, group effect)
    "syn_graded": dict(n=600, C=6, imb=0.0, blocks=[(256, 1.0, 0, None), (128, 0.6, 0, None), (64, 0.35, 0, None),
                                                     (128, 0.0, 0, None)], groups=0, geff=0.0),
    "syn_small_imb": dict(n=240, C=5, imb=1.2, blocks=[(128, 0.8, 0, None), (96, 0.7, 0, None), (64, 0.0, 0, None)],
                          groups=10, geff=0.5),
    "syn_correlated": dict(n=800, C=7, imb=0.5, blocks=[(192, 0.8, 0, "a"), (192, 0.75, 0, "a"), (128, 0.7, 0, "a"),
                                                         (96, 0.5, 0, None)], groups=0, geff=0.0),
    "syn_nonlinear": dict(n=1000, C=4, imb=0.3, blocks=[(64, 0.5, 1, None), (64, 0.5, 1, None), (128, 0.4, 0, None)],
                          groups=0, geff=0.0),
    "syn_speakers": dict(n=500, C=6, imb=0.3, blocks=[(128, 0.7, 0, None), (80, 0.6, 0, None), (128, 0.1, 0, None)],
                         groups=12, geff=1.5),
    "syn_many_weak": dict(n=1500, C=8, imb=0.8, blocks=[(64, 0.4, 0, None)] * 5, groups=0, geff=0.0),
}


def make_synth(name, seed=0):
    """Synthetic multi-block data with known structure (see SYNTH).

    Latent class code z_c (dim 16) per class; block b sees strength_b * z_y (or, if nonlinear,
    a class code passed through a random sign/XOR pattern that a linear model cannot read),
    plus noise that is shared between blocks with the same shared-noise id, plus a per-group
    offset and scale (group effect), projected to dim_b by a random matrix and given 10% isotropic noise.
    3% label noise.
    """
    p = SYNTH[name]
    rng = np.random.default_rng(1000 + seed * 7 + sum(map(ord, name)))
    n, C = p["n"], p["C"]
    pri = np.arange(1, C + 1, dtype=float) ** (-p["imb"])
    pri /= pri.sum()
    y = rng.choice(C, n, p=pri)
    L = 16
    codes = rng.normal(size=(C, L))
    G = p["groups"]
    groups = rng.integers(0, G, n) if G else None
    shared = {}
    feats, mod = {}, {}
    for b, (dim, s, nonlin, sid) in enumerate(p["blocks"]):
        if sid is not None:
            if sid not in shared:
                shared[sid] = rng.normal(size=(n, L))
            noise = 0.8 * shared[sid] + 0.6 * rng.normal(size=(n, L))
        else:
            noise = rng.normal(size=(n, L))
        if nonlin:
            # class signal is an XOR of two latent signs: a pair of latent dims with random sign,
            # the class determines only the product of their signs.
            sig = np.zeros((n, L))
            par = rng.integers(0, 2, size=(C, L // 2)) * 2 - 1
            a = rng.choice([-1, 1], size=(n, L // 2))
            sig[:, : L // 2] = a
            sig[:, L // 2:] = a * par[y]
            sig *= 1.5
        else:
            sig = codes[y]
        z = s * sig + noise
        if G:
            off = rng.normal(size=(G, L)) * p["geff"]
            scale = np.exp(rng.normal(size=(G, 1)) * 0.3 * p["geff"])
            z = z * scale[groups] + off[groups]
        W = rng.normal(size=(L, dim)) / np.sqrt(L)
        x = z @ W + 0.3 * rng.normal(size=(n, dim))
        if nonlin:
            x = np.tanh(x)
        feats[f"b{b}"] = x.astype(np.float32)
        mod[f"b{b}"] = f"m{b}"
    flip = rng.random(n) < 0.03
    y = np.where(flip, rng.integers(0, C, n), y)
    return Setting(name, feats, mod, {"y": y}, {"y": list(range(C))}, groups=groups, speaker=groups)


def load(name):
    if name == "emodb":
        return load_emodb()
    if name == "meld":
        return load_meld()
    if name == "demo_mer":
        return load_demo_mer()
    if name == "demo_meiju":
        return load_demo_meiju()
    return make_synth(name)


# ----------------------------------------------------------------------------- linear
C_GRID = tuple(10.0 ** np.arange(-4, 2.01, 1.0))  # 1e-4 .. 1e2


def _standardise(Xtr, Xte):
    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd[sd < 1e-8] = 1.0
    return (Xtr - mu) / sd, (Xte - mu) / sd


def fit_lr(Xtr, ytr, C, class_weight=None, n_classes=None, max_iter=300):
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, tol=1e-4)
    m.fit(Xtr, ytr)
    return m


def lr_proba(m, X, n_classes):
    out = np.zeros((len(X), n_classes))
    out[:, m.classes_] = m.predict_proba(X)
    return out


def lr_inner_scores(X, y, groups, n_classes, grid, cws=(None,), k=3, seed=0):
    """Pooled inner-CV weighted F1 per (C, class_weight); X already standardised on the outer
    training rows (standardisation is refit per inner fold for exactness)."""
    f = inner_folds(y, groups, k, seed)
    res = {}
    for cw in cws:
        oof = {c: np.zeros((len(y), n_classes)) for c in grid}
        for j in np.unique(f):
            tr, va = f != j, f == j
            a, b = _standardise(X[tr], X[va])
            for c in grid:  # small → large C
                m = fit_lr(a, y[tr], c, cw)
                oof[c][va] = lr_proba(m, b, n_classes)
        for c in grid:
            res[(c, cw)] = wf1(y, oof[c], n_classes)
    return res


def lr_select_fit_predict(Xtr, ytr, Xte, n_classes, groups=None, grid=C_GRID, cws=(None,), k=3, seed=0,
                          fixed=None):
    """Standardised multinomial logistic regression; C (and class_weight) by inner CV unless fixed=(C, cw).
    Returns (proba_te, chosen (C, cw))."""
    if fixed is None:
        sc = lr_inner_scores(Xtr, ytr, groups, n_classes, grid, cws, k, seed)
        best = max(sc, key=lambda key: (sc[key], -abs(np.log10(key[0]))))  # ties → C nearer 1
    else:
        best = fixed
    a, b = _standardise(Xtr, Xte)
    m = fit_lr(a, ytr, best[0], best[1])
    return lr_proba(m, b, n_classes), best


# ----------------------------------------------------------------------------- MLP (torch)
def _torch():
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch


class _Net:
    pass


def _build_mlp(dim, n_classes, hidden, layers, dropout, seed):
    torch = _torch()
    from torch import nn

    torch.manual_seed(seed)
    mods = []
    d = dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
        d = hidden
    mods.append(nn.Linear(d, n_classes))
    return nn.Sequential(*mods)


def _predict_net(net, X):
    torch = _torch()
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(X), 1).numpy().astype(np.float64)


def train_mlp(Xtr, ytr, n_classes, Xval=None, yval=None, *, hidden=256, layers=2, dropout=0.3, lr=1e-3,
              weight_decay=1e-5, batch=32, epochs=100, patience=10, seed=0, class_weight=None, es_metric="f1",
              fixed_epochs=None):
    """Adam, batch 32, cross-entropy. With (Xval, yval): keep the epoch with the best validation
    score (weighted F1, or -loss with es_metric='loss'), stop after `patience` epochs without gain.
    With fixed_epochs: train exactly that many epochs. Inputs standardised with training statistics.
    Returns (net, mu, sd, best_epoch, best_val_score)."""
    torch = _torch()
    import copy

    mu = Xtr.mean(0)
    sd = Xtr.std(0)
    sd[sd < 1e-8] = 1
    Xt = torch.from_numpy(((Xtr - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(ytr.astype(np.int64))
    net = _build_mlp(Xt.shape[1], n_classes, hidden, layers, dropout, seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    w = None
    if class_weight == "balanced":
        cnt = np.bincount(ytr, minlength=n_classes).astype(float)
        w = torch.tensor(np.where(cnt > 0, len(ytr) / (n_classes * np.maximum(cnt, 1)), 0.0), dtype=torch.float32)
    lossf = torch.nn.CrossEntropyLoss(weight=w)
    g = torch.Generator().manual_seed(seed)
    if Xval is not None:
        Xv = torch.from_numpy(((Xval - mu) / sd).astype(np.float32))
    n_ep = fixed_epochs if fixed_epochs is not None else epochs
    best, best_ep, best_state, bad = -np.inf, 0, None, 0
    for ep in range(1, n_ep + 1):
        net.train()
        perm = torch.randperm(len(Xt), generator=g)
        for i in range(0, len(Xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = lossf(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        if Xval is not None and fixed_epochs is None:
            pv = _predict_net(net, Xv)
            if es_metric == "f1":
                s = wf1(yval, pv, n_classes)
            else:
                s = float(np.log(np.clip(pv[np.arange(len(yval)), yval], 1e-12, None)).mean())
            if s > best + 1e-9:
                best, best_ep, best_state, bad = s, ep, copy.deepcopy(net.state_dict()), 0
            else:
                bad += 1
                if bad >= patience:
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_ep = n_ep
    return net, mu, sd, best_ep, best


def mlp_predict(model, X):
    torch = _torch()
    net, mu, sd = model[:3]
    return _predict_net(net, torch.from_numpy(((X - mu) / sd).astype(np.float32)))


MLP_DEFAULT = dict(hidden=256, layers=2, dropout=0.3, weight_decay=1e-5)


def mlp_fit_predict(Xtr, ytr, Xte, n_classes, groups=None, protocol="inner_keep", seeds=(0,), hp=None,
                    es_frac=0.15, Xval_outer=None, yval_outer=None, class_weight=None, es_metric="f1"):
    """MLP protocols: 'inner_keep' (early stop on an inner grouped/stratified holdout, keep that model),
    'inner_refit' (then refit on all training rows for the best epoch count), 'leaky' (early stop on
    the outer validation rows — the project's current runner behaviour; optimistic OOF).
    Probabilities averaged over seeds."""
    hp = dict(MLP_DEFAULT, **(hp or {}))
    out = np.zeros((len(Xte), n_classes))
    info = []
    for s in seeds:
        if protocol == "leaky":
            m = train_mlp(Xtr, ytr, n_classes, Xval_outer, yval_outer, seed=s, class_weight=class_weight,
                          es_metric=es_metric, **hp)
        else:
            ho = holdout_split(ytr, groups, es_frac, seed=s)
            m = train_mlp(Xtr[~ho], ytr[~ho], n_classes, Xtr[ho], ytr[ho], seed=s, class_weight=class_weight,
                          es_metric=es_metric, **hp)
            if protocol == "inner_refit":
                m = train_mlp(Xtr, ytr, n_classes, seed=s, class_weight=class_weight, fixed_epochs=max(1, m[3]),
                              **hp)
        out += mlp_predict(m, Xte)
        info.append(m[3])
    return out / len(seeds), info


# ----------------------------------------------------------------------------- gradient boosting
def hgb_fit_predict(Xtr, ytr, Xte, n_classes, groups=None, max_depth=None, max_leaf_nodes=15, lr=0.1,
                    es_frac=0.15, seed=0, class_weight=None):
    """sklearn HistGradientBoosting with early stopping on an inner grouped/stratified holdout."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    ho = holdout_split(ytr, groups, es_frac, seed)
    m = HistGradientBoostingClassifier(max_iter=300, learning_rate=lr, max_depth=max_depth,
                                       max_leaf_nodes=max_leaf_nodes, early_stopping=True, n_iter_no_change=20,
                                       random_state=seed, l2_regularization=1.0, class_weight=class_weight)
    m.fit(Xtr[~ho], ytr[~ho], X_val=Xtr[ho], y_val=ytr[ho])
    out = np.zeros((len(Xte), n_classes))
    out[:, m.classes_] = m.predict_proba(Xte)
    return out, m.n_iter_


def xgb_fit_predict(Xtr, ytr, Xte, n_classes, groups=None, max_depth=4, lr=0.1, es_frac=0.15, seed=0):
    """XGBoost hist, nthread=1, early stopping (20 rounds) on an inner grouped/stratified holdout."""
    import xgboost as xgb

    ho = holdout_split(ytr, groups, es_frac, seed)
    # labels must be 0..C-1 present; remap to classes present in training part
    cls = np.unique(ytr)
    remap = {c: i for i, c in enumerate(cls)}
    ya = np.array([remap[v] for v in ytr])
    m = xgb.XGBClassifier(n_estimators=300, learning_rate=lr, max_depth=max_depth, tree_method="hist", nthread=1,
                          subsample=0.8, colsample_bytree=0.5, reg_lambda=1.0, early_stopping_rounds=20,
                          eval_metric="mlogloss", random_state=seed, verbosity=0)
    m.fit(Xtr[~ho], ya[~ho], eval_set=[(Xtr[ho], ya[ho])], verbose=False)
    out = np.zeros((len(Xte), n_classes))
    out[:, cls] = m.predict_proba(Xte)
    return out, int(m.best_iteration) + 1


# ----------------------------------------------------------------------------- misc
def summarise(scores):
    s = np.asarray(scores)
    return f"{s.mean():.4f} ± {s.std(ddof=1):.4f}"


def paired(a, b):
    """Mean and SE of the per-fold differences a - b."""
    d = np.asarray(a) - np.asarray(b)
    return d.mean(), d.std(ddof=1) / np.sqrt(len(d))


class Timer:
    def __enter__(self):
        self.t0 = time.process_time()
        self.w0 = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.cpu = time.process_time() - self.t0
        self.wall = time.perf_counter() - self.w0


def save_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=1, default=float))
