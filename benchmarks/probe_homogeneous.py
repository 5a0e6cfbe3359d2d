"""Issue 25, item 3: the evidence the statistics-axis rule reads, on real
data. Per table (or flattened signal): the varying columns, whether every
varying column's range holds a common value, the share of them that span
at least half of the overall range, and the smallest column range as a
share of it. `data.stats.homogeneous` pools the statistics when a common
value exists and the share is above HOMOGENEOUS_SHARE (0.5).

    python benchmarks/probe_homogeneous.py
"""
import numpy as np, gzip, sys
sys.path.insert(0, __import__("os").path.dirname(__file__))
import pandas as pd
from common import DATA
from sklearn import datasets as D
def cols(x):
    x = x.reshape(len(x), -1) if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    return x.astype("float64")
def report(name, x):
    c = cols(x)
    mn, mx, sd = c.min(0), c.max(0), c.std(0)
    v = sd > 1e-8
    lo, hi = mn[v].min(), mx[v].max(); span = hi - lo
    common = mn[v].max() <= mx[v].min()
    rng = (mx - mn)[v] / span
    half = (rng >= 0.5).mean()
    print(f"{name:22} cols {c.shape[1]:5} varying {v.sum():5} common_point {common!s:5} frac_range>=0.5span {half:.2f}  min_range {rng.min():.3g}")
from keras_recipes.datasets import load_digits
x, y = load_digits("train"); report("digits", x)
with gzip.open(str(DATA) + "/mnist_test/t10k-images-idx3-ubyte.gz") as f:
    m = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
report("mnist flat", m); report("mnist (28,28) rows", m.reshape(-1, 28, 28))
cal = pd.read_csv(str(DATA) + "/tabular/california_housing.csv").select_dtypes("number").dropna()
report("california", cal.drop(columns=["median_house_value"]).values)
g = pd.read_csv(str(DATA) + "/tabular/grunfeld.csv").select_dtypes("number"); print(list(g.columns))
report("grunfeld", g[[c for c in g.columns if c in ("value", "capital")]].values)
report("grunfeld all", g.values)
for n in ("load_wine", "load_iris", "load_breast_cancer", "load_diabetes"):
    report(n, getattr(D, n)().data)
from bench_quality import read_ts
(a, _) = read_ts(str(DATA) + "/sequences/acsf1/ACSF1_TRAIN.ts"); report("acsf1 flat", a[..., 0]); report("acsf1 (T,1)", a)
import scipy.io.wavfile as w, glob
ws = [w.read(f)[1][:4000].astype("float32") for f in sorted(glob.glob(str(DATA) + "/fsdd/recordings/*.wav"))[:300]]
ws = np.stack([np.pad(q, (0, 4000 - len(q))) for q in ws]); report("fsdd wave flat", ws)
lin = D.load_linnerud(); report("linnerud", lin.data)
