"""Published next-basket methods as anchors for new-item suggestions, on the
shared Complete Journey data (docs/suggestions.md, "Anchors from the
next-basket literature").

Outside the service, on purpose: an approximation of `evaluate`'s protocol
(each household's latest order held out; ten items it never bought, no
non-merchandise and nothing missing from the catalogue; a hit when the
held-out order holds one), without the look-alike rule, so compare each
method with this script's own popularity line, not with `evaluate`'s.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy scipy
    /tmp/venv/bin/python eval/anchors/explore.py [--split a|b|c] [--moved-back N] [--transitions]

UP-CF@r (Faggioli et al., UMAP 2020): users alike by asymmetric cosine over
everything they bought, each neighbour's items counted over their last r
orders. Settings were chosen on split (a) only. `--transitions`: what
households first bought right after holding an item in their last three
orders (next-novel targets), blended with first-purchase popularity.
"""
import argparse, gzip, json, collections
import numpy as np, scipy.sparse as sp

DATA = '../shared/datasets/completejourney/'
NM = {"COUPON", "MISCELLANEOUS", "FUEL", "CHARITABLE CONT", "POSTAL CENTER",
      "CNTRL/STORE SUP", "PROD-WHS SALES"}

ap = argparse.ArgumentParser()
ap.add_argument('--data', default=DATA)
ap.add_argument('--split', default='a', choices='abc')
ap.add_argument('--moved-back', type=int, default=0)
ap.add_argument('--transitions', action='store_true')
args = ap.parse_args()

dept = {}
for line in gzip.open(args.data + 'catalog.jsonl.gz', 'rt'):
    o = json.loads(line)
    dept[o['product_id']] = o.get('category', '').split(' > ')[0]
orders = collections.defaultdict(list)
for line in gzip.open(args.data + 'orders.jsonl.gz', 'rt'):
    o = json.loads(line)
    orders[o['userId']].append((o['timestamp'], o['properties']['order_id'],
                                [p['product_id'] for p in o['properties']['products']]))
for u in orders:
    orders[u].sort()

back = args.moved_back
users = sorted(u for u in orders if len(orders[u]) >= 2 + back)
parity = {'a': None, 'b': 0, 'c': 1}[args.split]
if parity is not None:
    users = [u for u in users if int(u.split('-')[1]) % 2 == parity]
items = sorted(set(dept) | {p for u in orders for o in orders[u] for p in o[2]})
idx = {p: i for i, p in enumerate(items)}
allowed = np.array([p in dept and dept[p] not in NM for p in items])
train, test = {}, {}
for u in users:
    kept = orders[u][:len(orders[u]) - back]
    train[u], test[u] = kept[:-1], {idx[p] for p in kept[-1][2]}
U, I = len(users), len(items)
row = {u: i for i, u in enumerate(users)}
owned = {u: {idx[p] for o in train[u] for p in o[2]} for u in users}
B = sp.csr_matrix((np.ones(sum(map(len, owned.values()))),
                   ([row[u] for u in users for _ in owned[u]],
                    [i for u in users for i in owned[u]])), shape=(U, I))
evaluated = [u for u in users if any(allowed[i] and i not in owned[u] for i in test[u])]
popularity = np.asarray(B.sum(0)).ravel()
tie = 1e-9 * popularity / popularity.max()


def hit_rate(score_of, name):
    hits = 0
    for u in evaluated:
        s = score_of(u).astype(float)
        s[~allowed] = -np.inf
        s[list(owned[u])] = -np.inf
        top = [t for t in np.argpartition(-s, 10)[:10] if np.isfinite(s[t])]
        hits += any(t in test[u] for t in top)
    rate = hits / len(evaluated)
    print(f'{name:46s} {rate:.4f}  {rate / base:.2f}x' if name != 'popularity (households)'
          else f'{name:46s} {rate:.4f}')
    return rate


base = 1.0
print(f'split {args.split}, moved back {back}: {len(evaluated)} households evaluated')
base = hit_rate(lambda u: popularity + tie, 'popularity (households)')


def recent(u, r):
    v = np.zeros(I)
    for o in train[u][-r:]:
        v[list({idx[p] for p in o[2]})] += 1
    return v / max(1, min(r, len(train[u])))


def upcf(r, alpha, q, k):
    X = sp.csr_matrix(np.vstack([recent(u, r) for u in users]))
    sim = (B @ B.T).toarray()
    n = np.asarray(B.sum(1)).ravel() + 1e-9
    sim = sim / (n[:, None] ** alpha * n[None, :] ** (1 - alpha))
    np.fill_diagonal(sim, 0)
    sim = sim ** q
    kth = -np.sort(-sim, axis=1)[:, k - 1:k]
    scores = (sp.csr_matrix(np.where(sim >= kth, sim, 0)) @ X).toarray()
    scores /= scores.max(1, keepdims=True) + 1e-300
    return lambda u: scores[row[u]] + tie


hit_rate(upcf(10, 0.5, 1, 300), 'UP-CF@r (r 10, alpha 0.5, q 1, k 300)')

if args.transitions:
    R, N = ([], []), ([], [])
    t = 0
    for u in users:
        seen, last = set(), []
        for o in train[u]:
            bought = {idx[p] for p in o[2]}
            if seen:
                held = set().union(*last[-3:])
                R[0].extend([t] * len(held)); R[1].extend(held)
                new = bought - seen
                N[0].extend([t] * len(new)); N[1].extend(new)
                t += 1
            seen |= bought
            last.append(bought)
    Rm = sp.csr_matrix((np.ones(len(R[0])), R), shape=(t, I))
    Nm = sp.csr_matrix((np.ones(len(N[0])), N), shape=(t, I))
    first = np.asarray(Nm.sum(0)).ravel()
    hit_rate(lambda u: first + tie, 'first-purchase popularity')
    held_count = np.asarray(Rm.sum(0)).ravel()
    C = (sp.diags(1 / np.sqrt(held_count + 10)) @ (Rm.T @ Nm)).tocsr()

    def transitions(u):
        v = np.zeros(I)
        v[list(set().union(*[{idx[p] for p in o[2]} for o in train[u][-3:]]))] = 1
        s = C.T @ v
        return s / (s.max() + 1e-12) + first / first.max() + tie
    hit_rate(transitions, 'next-novel transitions + first-purchase pop.')
