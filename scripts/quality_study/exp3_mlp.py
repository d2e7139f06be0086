"""Point 3: MLP defaults (torch, Adam, batch 32, max 100 epochs, patience 10; default net
hidden 256 x 2 layers, dropout 0.3, weight decay 1e-5 = the project's mlp defaults).
Outer 5-fold CV (grouped where the data has groups), fold seed 0. Arms:
  leaky      early stopping on the OUTER validation fold (what the project's runner does today:
             it passes the validation rows as X_val) — its OOF score is optimistic by construction
  keep       early stopping (weighted F1) on an inner 15% holdout of the training rows
             (grouped / stratified), keep that model
  keep_loss  same, early stopping on the holdout log-likelihood
  refit      keep's best epoch count, then refit on all training rows for that many epochs
  keep3 / refit3   the same averaged over 3 seeds (each seed its own holdout)
  hp_refit   4 configurations (default; 512x1 d0.5 wd1e-4; 128x2 d0.2 wd1e-3; 256x1 d0.5 wd1e-3)
             scored on the inner holdout, the best refit on all training rows (seed 0)
  hp_refit3  same choice, refit with 3 seeds
Reference: logistic regression (C=1 and C by inner 3-fold) from exp1 on the same folds.
Writes out/exp3.json and the OOF matrices out/exp3_oof_*.npz.
"""

import sys
import time

import common as c
import numpy as np

HPS = {
    "default": dict(hidden=256, layers=2, dropout=0.3, weight_decay=1e-5),
    "w512_l1_d05": dict(hidden=512, layers=1, dropout=0.5, weight_decay=1e-4),
    "w128_l2_d02_wd3": dict(hidden=128, layers=2, dropout=0.2, weight_decay=1e-3),
    "w256_l1_d05_wd3": dict(hidden=256, layers=1, dropout=0.5, weight_decay=1e-3),
}

JOBS = {
    "emodb": ["whisper-tiny-UTT", "mfcc-UTT", "concat"],
    "meld": ["minilm-UTT"],
    "demo_mer": ["chinese-hubert-large-UTT", "chinese-roberta-wwm-ext-large-UTT", "concat"],
    "demo_meiju": ["hubert-large-FRA", "roberta-large-FRA", "concat"],
    "syn_graded": ["concat"],
    "syn_small_imb": ["concat"],
    "syn_nonlinear": ["concat"],
    "syn_many_weak": ["concat"],
}


def run(ds_name, seed=0):
    s = c.load(ds_name)
    res = []
    for t, y in s.targets.items():
        C = len(s.classes[t])
        folds = c.make_folds(y, s.groups, 5, seed)
        for name in JOBS[ds_name]:
            X = s.concat(list(s.features) if name == "concat" else [name])
            arms = ["leaky", "keep", "keep_loss", "refit", "keep3", "refit3", "hp_refit", "hp_refit3"]
            oof = {a: np.zeros((s.n, C)) for a in arms}
            cpu = {a: 0.0 for a in arms}
            info = {a: [] for a in arms}
            for k in range(5):
                tr, va = folds != k, folds == k
                Xtr, ytr, Xva = X[tr], y[tr], X[va]
                g = None if s.groups is None else s.groups[tr]
                t0 = time.process_time()
                m = c.train_mlp(Xtr, ytr, C, X[va], y[va], seed=0, **HPS["default"])
                oof["leaky"][va] = c.mlp_predict(m, Xva)
                cpu["leaky"] += time.process_time() - t0
                info["leaky"].append(m[3])
                keep, refit, ho_score, t_keep, t_ref = [], [], None, [], []
                for sd in range(3):
                    ho = c.holdout_split(ytr, g, 0.15, seed=sd)
                    t0 = time.process_time()
                    m = c.train_mlp(Xtr[~ho], ytr[~ho], C, Xtr[ho], ytr[ho], seed=sd, **HPS["default"])
                    keep.append(c.mlp_predict(m, Xva))
                    t_keep.append(time.process_time() - t0)
                    if sd == 0:
                        ho_score, ep0 = m[4], m[3]
                    t0 = time.process_time()
                    mr = c.train_mlp(Xtr, ytr, C, seed=sd, fixed_epochs=max(1, m[3]), **HPS["default"])
                    refit.append(c.mlp_predict(mr, Xva))
                    t_ref.append(time.process_time() - t0)
                    info["keep3"].append(m[3])
                oof["keep"][va], oof["refit"][va] = keep[0], refit[0]
                oof["keep3"][va], oof["refit3"][va] = np.mean(keep, 0), np.mean(refit, 0)
                cpu["keep"] += t_keep[0]
                cpu["refit"] += t_keep[0] + t_ref[0]
                cpu["keep3"] += sum(t_keep)
                cpu["refit3"] += sum(t_keep) + sum(t_ref)
                info["keep"].append(ep0)
                # early stopping on holdout log-likelihood
                ho = c.holdout_split(ytr, g, 0.15, seed=0)
                t0 = time.process_time()
                m = c.train_mlp(Xtr[~ho], ytr[~ho], C, Xtr[ho], ytr[ho], seed=0, es_metric="loss", **HPS["default"])
                oof["keep_loss"][va] = c.mlp_predict(m, Xva)
                cpu["keep_loss"] += time.process_time() - t0
                info["keep_loss"].append(m[3])
                # small hp selection on the same holdout (seed 0)
                t0 = time.process_time()
                scores = {"default": (ho_score, ep0)}
                for hn, hp in HPS.items():
                    if hn == "default":
                        continue
                    m = c.train_mlp(Xtr[~ho], ytr[~ho], C, Xtr[ho], ytr[ho], seed=0, **hp)
                    scores[hn] = (m[4], m[3])
                best = max(scores, key=lambda h: scores[h][0])
                t_sel = time.process_time() - t0 + t_keep[0]
                preds = []
                t0 = time.process_time()
                for sd in range(3):
                    mr = c.train_mlp(Xtr, ytr, C, seed=sd, fixed_epochs=max(1, scores[best][1]), **HPS[best])
                    preds.append(c.mlp_predict(mr, Xva))
                    if sd == 0:
                        t1 = time.process_time() - t0
                oof["hp_refit"][va] = preds[0]
                oof["hp_refit3"][va] = np.mean(preds, 0)
                cpu["hp_refit"] += t_sel + t1
                cpu["hp_refit3"] += t_sel + time.process_time() - t0
                info["hp_refit"].append(best)
            for a in arms:
                fs = c.fold_scores(y, oof[a], folds)
                res.append(dict(dataset=ds_name, target=t, input=name, seed=seed, arm=a, folds=fs.tolist(),
                                pooled=c.wf1(y, oof[a], C), cpu=cpu[a], info=info[a]))
                print(ds_name, t, name, a, c.summarise(fs), f"{cpu[a]:.0f}s", info[a][:5], flush=True)
            np.savez_compressed(c.OUTDIR / f"exp3_oof_{ds_name}_{t}_{name}_s{seed}.npz", folds=folds, y=y, **oof)
    return res


if __name__ == "__main__":
    import json

    path = c.OUTDIR / "exp3.json"
    allres = json.loads(path.read_text()) if path.exists() else []
    for n in sys.argv[1:] or list(JOBS):
        allres = [r for r in allres if r["dataset"] != n] + run(n)
        c.save_json(path, allres)
