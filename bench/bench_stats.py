"""Timing of theraquant.stats pieces next to the obvious alternative, in one run on the same data.

Run: python bench/bench_stats.py   (prints a markdown table for bench/RESULTS.md)

1. DeLong variance: midrank placement values (theraquant, O(n log n)) vs the defining
   M x N psi matrix (O(M N)), n lesions with half responders.
2. Fisher exact on an r x c table: theraquant's full enumeration (exact) vs scipy.stats.fisher_exact,
   whose r x c default is a Monte Carlo estimate.
3. Clustered AUC CI: Obuchowski (closed form) vs the patient-level cluster bootstrap (2000 replicates).
"""

import platform
import time

import numpy as np
import scipy
from scipy import stats as sps

from theraquant.stats import cluster_bootstrap, fisher_test, roc


def best(f, repeat=5):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        t.append(time.perf_counter() - t0)
    return min(t), out


def delong_matrix(y, s):
    X, Y = s[y == 1], s[y == 0]
    psi = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])
    return np.var(psi.mean(1), ddof=1) / X.size + np.var(psi.mean(0), ddof=1) / Y.size


def main():
    rng = np.random.default_rng(0)
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"{platform.machine()}\n")
    print("| task | size | theraquant | alternative | agreement |")
    print("|---|---|---|---|---|")
    for n in (200, 2000, 10000):
        y = (rng.random(n) < 0.5).astype(int)
        s = np.round(rng.normal(size=n) + y, 2)
        ta, ra = best(lambda: roc(y, s, direction="<").auc_var)
        tb, rb = best(lambda: delong_matrix(y, s), repeat=2 if n > 5000 else 5)
        print(f"| DeLong variance | {n} lesions | {1e3 * ta:.1f} ms | psi matrix {1e3 * tb:.1f} ms | "
              f"rel. diff {abs(ra / rb - 1):.1e} |")
    t = np.array([[3, 1, 0, 2], [4, 1, 1, 2], [5, 0, 1, 3]])
    ta, ra = best(lambda: fisher_test(t).p)
    tb, rb = best(lambda: sps.fisher_exact(t).pvalue)
    print(f"| Fisher exact 3x4 | n = 23 | {1e3 * ta:.1f} ms (p = {ra:.6f}, exact; R 0.988139) | "
          f"scipy {1e3 * tb:.1f} ms (p = {rb:.4f}, Monte Carlo) | {abs(ra - rb):.1e} |")
    t = np.array([[1, 4, 4, 9], [10, 4, 26, 14]])  # tests/data/r_reference/table_recist_tbp.csv
    ta, ra = best(lambda: fisher_test(t).p)
    tb, rb = best(lambda: sps.fisher_exact(t).pvalue)
    print(f"| Fisher exact 2x4 | n = {t.sum()} | {1e3 * ta:.1f} ms (p = {ra:.6f}, exact; R 0.029980) | "
          f"scipy {1e3 * tb:.1f} ms (p = {rb:.4f}, Monte Carlo) | {abs(ra - rb):.1e} |")
    n_pat = 25
    sizes = rng.integers(1, 5, n_pat)
    pid = np.repeat(np.arange(n_pat), sizes)
    u = np.repeat(rng.normal(size=n_pat), sizes)
    y = (rng.random(pid.size) < 1 / (1 + np.exp(-u))).astype(int)
    s = rng.normal(size=pid.size) + y + u
    ta, ra = best(lambda: roc(y, s, cluster=pid).ci)
    tb, rb = best(lambda: cluster_bootstrap(y, s, pid, n_boot=2000, seed=0).auc_ci_percentile, repeat=2)
    print(f"| clustered AUC 95 % CI | {pid.size} lesions, {n_pat} patients | Obuchowski {1e3 * ta:.1f} ms "
          f"({ra[0]:.3f}-{ra[1]:.3f}) | cluster bootstrap 2000x {1e3 * tb:.0f} ms ({rb[0]:.3f}-{rb[1]:.3f}) | - |")


if __name__ == "__main__":
    main()
