"""scikit-learn's NMF on a matrix featscope dumped: the oracle of test/analysis/concepts.test.ts.

nmf_oracle.py A.npy K ITERATIONS OUT_DIR: writes OUT_DIR/W.npy (components_, k x C),
OUT_DIR/U.npy (fit_transform, n x k), OUT_DIR/Ut.npy (transform(A) with W fixed, n x k),
all float64, and OUT_DIR/errors.json with the relative errors ||A - UW|| / ||A||.
"""
import json
import sys
import warnings

import numpy as np
from sklearn.decomposition import NMF

a_file, k, iterations, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
A = np.load(a_file).astype(np.float64)
warnings.simplefilter('ignore')  # ConvergenceWarning: tol=0 runs every iteration on purpose
nmf = NMF(n_components=k, init='nndsvda', solver='cd', max_iter=iterations, tol=0, random_state=0)
U = nmf.fit_transform(A)
W = nmf.components_
Ut = nmf.transform(A)
rel = lambda U: float(np.linalg.norm(A - U @ W) / np.linalg.norm(A))
np.save(f'{out}/W.npy', np.ascontiguousarray(W))
np.save(f'{out}/U.npy', np.ascontiguousarray(U))
np.save(f'{out}/Ut.npy', np.ascontiguousarray(Ut))
json.dump({'fit': rel(U), 'transform': rel(Ut), 'n_iter': int(nmf.n_iter_)}, open(f'{out}/errors.json', 'w'))
