"""Point 1: logistic regression defaults. Standardised multinomial LR per feature and on the
concatenation of all features, outer 5-fold CV (grouped where the data has groups):
  C1         C = 1, class_weight None
  C_in3      C from an inner 3-fold CV on the outer training rows (grid 1e-4..1e2), cw None
  C_in5      same with 5 inner folds
  Ccw_in3    C and class_weight (None / balanced) chosen jointly by inner 3-fold CV
  Ccw_in5    same with 5 inner folds
  bal_C_in3  class_weight balanced always, C by inner 3-fold
Inner folds are grouped when the data has groups. Writes out/exp1.json.

Usage: python exp1_linear.py [dataset ...]
"""

import sys
import time

import common as c
import numpy as np

DATASETS = ["emodb", "meld", "demo_mer", "demo_meiju", "syn_graded", "syn_small_imb", "syn_correlated",
            "syn_nonlinear", "syn_speakers", "syn_many_weak"]
SEEDS = {"meld": (0, 1)}


def pick(sc, allowed_cw):
    keys = [k for k in sc if k[1] in allowed_cw]
    return max(keys, key=lambda k: (sc[k], -abs(np.log10(k[0]))))


def run(ds_name):
    s = c.load(ds_name)
    inputs = {f: [f] for f in s.features}
    if len(s.features) > 1:
        inputs["concat"] = list(s.features)
    res = []
    for seed in SEEDS.get(ds_name, (0, 1, 2)):
        for t, y in s.targets.items():
            C = len(s.classes[t])
            folds = c.make_folds(y, s.groups, 5, seed)
            for name, fl in inputs.items():
                X = s.concat(fl)
                oof = {a: np.zeros((s.n, C)) for a in ("C1", "C_in3", "C_in5", "Ccw_in3", "Ccw_in5", "bal_C_in3")}
                chosen = {a: [] for a in oof}
                cpu = {a: 0.0 for a in oof}
                for k in range(5):
                    tr, va = folds != k, folds == k
                    g = None if s.groups is None else s.groups[tr]
                    t0 = time.process_time()
                    p, _ = c.lr_select_fit_predict(X[tr], y[tr], X[va], C, fixed=(1.0, None))
                    oof["C1"][va] = p
                    cpu["C1"] += time.process_time() - t0
                    for kin in (3, 5):
                        t0 = time.process_time()
                        sc_none = c.lr_inner_scores(X[tr], y[tr], g, C, c.C_GRID, (None,), kin, seed)
                        t_none = time.process_time() - t0
                        t0 = time.process_time()
                        sc_bal = c.lr_inner_scores(X[tr], y[tr], g, C, c.C_GRID, ("balanced",), kin, seed)
                        t_bal = time.process_time() - t0
                        sc = {**sc_none, **sc_bal}
                        arms = {f"C_in{kin}": (pick(sc, (None,)), t_none),
                                f"Ccw_in{kin}": (pick(sc, (None, "balanced")), t_none + t_bal)}
                        if kin == 3:
                            arms["bal_C_in3"] = (pick(sc, ("balanced",)), t_bal)
                        for a, (best, tt) in arms.items():
                            t0 = time.process_time()
                            p, _ = c.lr_select_fit_predict(X[tr], y[tr], X[va], C, fixed=best)
                            oof[a][va] = p
                            cpu[a] += tt + time.process_time() - t0
                            chosen[a].append([best[0], best[1] or "none"])
                for a in oof:
                    fs = c.fold_scores(y, oof[a], folds)
                    res.append(dict(dataset=ds_name, target=t, input=name, seed=seed, arm=a, folds=fs.tolist(),
                                    pooled=c.wf1(y, oof[a], C), chosen=chosen[a], cpu=cpu[a]))
                    print(ds_name, t, name, seed, a, c.summarise(fs), chosen[a][:5], f"{cpu[a]:.1f}s", flush=True)
                np.savez_compressed(c.OUTDIR / f"exp1_oof_{ds_name}_{t}_{name}_s{seed}.npz", folds=folds, y=y,
                                    **{a: v for a, v in oof.items()})
    return res


if __name__ == "__main__":
    names = sys.argv[1:] or DATASETS
    import json

    path = c.OUTDIR / "exp1.json"
    allres = json.loads(path.read_text()) if path.exists() else []
    for n in names:
        allres = [r for r in allres if r["dataset"] != n] + run(n)
        c.save_json(path, allres)
