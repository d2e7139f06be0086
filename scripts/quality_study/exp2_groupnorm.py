"""Point 2: per-speaker (per-group) feature normalisation vs global standardisation.

Logistic regression (standardised after the normalisation; C fixed at 1 and C by inner 3-fold
grouped CV) on each feature and on the concatenation, outer grouped 5-fold CV (EmoDB: by
speaker; fold seeds 0,1,2). Arms:
  global      global standardisation only (inside the LR, training-row statistics)
  spk_z       per-speaker z-scoring of every column (groupnorm.group_standardise, min_rows=10)
  spk_center  per-speaker centring only
  spk_z_s10   per-speaker z-scoring shrunk towards the global statistics, a = n_g / (n_g + 10)
  spk_z_fb    (small-group runs only) groups under 10 rows fall back to global statistics
Speaker statistics use all rows of that speaker (features only, never labels) — what a test
speaker's own rows would give at prediction time.
Small-group risk: the validation speakers' rows are cut into random chunks of m rows, each chunk
normalised with its own statistics (as if test speakers had only m utterances; min_rows=2, i.e.
no fallback, except in spk_z_fb); training speakers keep full statistics. m in (4, 8, 16).
Null case: syn_graded with random pseudo-groups of ~25 rows (no group effect at all).
MELD: groups = speaker (folds grouped by dialogue); speakers with < 10 labelled rows use global.
Writes out/exp2.json.
"""

import sys

import common as c
import numpy as np
from groupnorm import group_standardise

ARMS = {
    "global": None,
    "spk_z": dict(min_rows=10, shrink=0.0, scale=True),
    "spk_center": dict(min_rows=10, shrink=0.0, scale=False),
    "spk_z_s10": dict(min_rows=10, shrink=10.0, scale=True),
    # ... except this arm: groups under 10 rows fall back to global statistics
    "spk_z_fb": dict(min_rows=10, shrink=0.0, scale=True),
}


def chunk_groups(groups, folds, k, m, rng):
    """Groups where each validation speaker of fold k is split into random chunks of m rows."""
    g = np.asarray(groups, dtype=object).copy()
    for sp in set(g[folds == k].tolist()):
        idx = rng.permutation(np.flatnonzero((g == sp) & (folds == k)))
        for j in range(0, len(idx), m):
            g[idx[j:j + m]] = f"{sp}#chunk{j // m}"
    return g


def run(ds_name, seeds=(0, 1, 2), chunk_ms=(None, 4, 8, 16), pseudo_groups=False, Cmodes=("C1", "C_in3")):
    s = c.load(ds_name)
    spk = s.speaker
    if pseudo_groups:
        rng = np.random.default_rng(0)
        spk = rng.integers(0, s.n // 25, s.n).astype(str)
    folds_groups = s.groups if s.groups is not None else (spk if pseudo_groups else None)
    inputs = {f: [f] for f in s.features}
    if len(s.features) > 1:
        inputs["concat"] = list(s.features)
    res = []
    for seed in seeds:
        for t, y in s.targets.items():
            C = len(s.classes[t])
            folds = c.make_folds(y, folds_groups, 5, seed)
            for name, fl in inputs.items():
                Xraw = s.concat(fl)
                for m in chunk_ms:
                    if m is not None and ds_name == "meld":
                        continue
                    if m in (4, 16) and (seed > 0 or name not in ("whisper-tiny-UTT", "concat")):
                        continue  # budget: chunk sizes 4 and 16 on EmoDB seed 0, whisper and concat only
                    for arm, kw in ARMS.items():
                        if arm == "spk_z_fb" and m is None:
                            continue  # same as spk_z
                        if m is not None and arm == "global":
                            continue  # unaffected by chunking
                        if m is not None and arm != "spk_z_fb":
                            # small groups: use the chunk's own statistics (no fallback) ...
                            kw = dict(kw, min_rows=2)
                        for cm in Cmodes:
                            oof = np.zeros((s.n, C))
                            for k in range(5):
                                tr, va = folds != k, folds == k
                                if kw is None:
                                    X = Xraw
                                else:
                                    g = spk if m is None else chunk_groups(spk, folds, k, m, np.random.default_rng(k))
                                    X = group_standardise(Xraw, g, **kw)
                                gtr = None if folds_groups is None else folds_groups[tr]
                                fixed = (1.0, None) if cm == "C1" else None
                                p, _ = c.lr_select_fit_predict(X[tr], y[tr], X[va], C, groups=gtr, k=3, seed=seed,
                                                               fixed=fixed)
                                oof[va] = p
                            fs = c.fold_scores(y, oof, folds)
                            res.append(dict(dataset=ds_name + ("_pseudo" if pseudo_groups else ""), target=t,
                                            input=name, seed=seed, arm=arm, chunk=m, Cmode=cm, folds=fs.tolist(),
                                            pooled=c.wf1(y, oof, C)))
                            print(res[-1]["dataset"], t, name, seed, m, arm, cm, c.summarise(fs), flush=True)
    return res


if __name__ == "__main__":
    import json

    path = c.OUTDIR / "exp2.json"
    allres = json.loads(path.read_text()) if path.exists() else []
    jobs = sys.argv[1:] or ["emodb", "syn_speakers", "syn_small_imb", "syn_graded_pseudo", "meld"]
    for j in jobs:
        if j == "syn_graded_pseudo":
            r = run("syn_graded", seeds=(0, 1), pseudo_groups=True, chunk_ms=(None, 8))
        elif j == "meld":
            r = run("meld", seeds=(0,), chunk_ms=(None,))
        elif j == "emodb":
            r = run("emodb")
        else:
            r = run(j, seeds=(0, 1), chunk_ms=(None, 8))
        names = {x["dataset"] for x in r}
        allres = [x for x in allres if x["dataset"] not in names] + r
        c.save_json(path, allres)
