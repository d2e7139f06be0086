"""Driver: evaluate the blend-choice rules (rules_eval.evaluate_rules) on the stored OOF portfolios.

Each setting = one dataset/target/repeat: every exp1 (linear arms) and exp3 (MLP arms) OOF matrix of
that dataset/target/seed stacked as the runs. Writes out/rules.json after each setting.
"""
import glob
import json
import os
import re
import sys
import time
from collections import defaultdict

import numpy as np
import rules_eval as R
from common import OUTDIR

os.chdir(OUTDIR.parent)  # paths below are relative to this folder

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
only = sys.argv[2] if len(sys.argv) > 2 else None
groups = defaultdict(list)
for path in sorted(glob.glob("out/exp[13]_oof_*.npz")):
    m = re.match(r"out/exp(\d)_oof_(.+)_(.+?)_s(\d)\.npz", path)
    exp, ds_t, inp, seed = m.groups()
    groups[(ds_t, seed)].append(path)
results = {}
try:
    results = json.load(open("out/rules.json"))
except Exception:
    pass
for (ds_t, seed), paths in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    key = f"{ds_t}/s{seed}"
    if key in results or (only and only not in key) or (seed != "0" and not ds_t.startswith("syn")):
        continue
    P, names, y, folds = [], [], None, None
    for path in paths:
        z = np.load(path)
        if y is None:
            y, folds = z["y"], z["folds"]
        elif len(z["y"]) != len(y) or not (z["y"] == y).all():
            continue
        for k in z.files:
            if k in ("y", "folds") or k == "leaky":  # leaky early stopping is not an honest run
                continue
            P.append(z[k])
            names.append(f"{path.split('_oof_')[1][:-4]}:{k}")
    P = np.stack(P)
    t0 = time.time()
    scores, fold_sc, chosen, times, _ = R.evaluate_rules(P, y, folds, optuna_trials=TRIALS)
    results[key] = {"n": int(len(y)), "runs": len(names), "scores": scores, "fold_scores": fold_sc,
                    "chosen": [c if isinstance(c, list) else c for c in chosen.get("c_blend_ties_1se", [])],
                    "chosen_all": {k: v for k, v in chosen.items()}, "times": times, "wall": time.time() - t0}
    json.dump(results, open("out/rules.json", "w"), indent=1, default=str)
    print(key, len(names), f"{time.time() - t0:.0f}s",
          {k: round(v, 4) for k, v in sorted(scores.items()) if not k.startswith("fixed:")}, flush=True)
