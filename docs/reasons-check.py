#!/usr/bin/env python3
# Reads every household's suggestions from a running server (JSON face,
# no key: start it with --insecure-no-auth on a copy) and counts anchored
# reasons whose anchor is bought by more than 20 % of households, and lists
# holding two look-alikes (normalised independently of the service).
# Usage: python3 docs/reasons-check.py PORT SQLITE_FILE
import json, re, sqlite3, sys, urllib.request, collections
port = int(sys.argv[1]); db = sys.argv[2]
con = sqlite3.connect(db)
customers = [r[0] for r in con.execute("select customer_id from customers order by customer_id")]
n_cust = con.execute("select count(distinct customer_id) from orders where customer_id is not null").fetchone()[0]
buyers = dict(con.execute("select l.product_id, count(distinct o.customer_id) from orders o join order_lines l on l.order_id=o.order_id where o.customer_id is not null group by l.product_id"))
UNITS = r"(oz|fl|lb|lbs|ga|gal|gallon|qt|pt|ml|l|ltr|kg|g|gr|ct|count|pk|pack|dz|doz|dozen|ea|each)"
def norm(name, brand):
    n = name.lower()
    n = re.sub(r"\([^)]*\)", " ", n)
    n = re.sub(r"\b\d+(\.\d+)?\s*(x\s*\d+(\.\d+)?\s*)?" + UNITS + r"\b", " ", n)
    n = re.sub(r"\b\d+(\.\d+)?" + UNITS + r"\b", " ", n)
    n = " ".join(n.split())
    return (brand.lower(), n)
anchored = 0; ubiq = 0; lists = 0; with_alike = 0; items = 0; codes = collections.Counter(); examples = []
for c in customers:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/suggestions?customer_id={c}") as r:
        body = json.load(r)
    its = body.get("suggestions", {}).get("items", [])
    if not its: continue
    lists += 1; items += len(its)
    keys = [norm(i["product"].get("name",""), i["product"].get("brand","")) for i in its]
    if len(set(keys)) < len(keys):
        with_alike += 1
        if len(examples) < 3:
            dup = [i["product"]["name"] for i, k in zip(its, keys) if keys.count(k) > 1]
            examples.append(("lookalike", c, dup))
    for i in its:
        reason = i.get("reason", {}); code = reason.get("code", ""); codes[code] += 1
        if code in ("REASON_CODE_ALSO_BOUGHT", "REASON_CODE_BOUGHT_TOGETHER") and reason.get("productIds"):
            anchored += 1
            a = reason["productIds"][0]
            if buyers.get(a, 0) > 0.2 * n_cust:
                ubiq += 1
                if len(examples) < 6: examples.append(("ubiquitous", c, reason.get("text")))
print(f"households with a list: {lists}, items {items}")
print(f"anchored reasons: {anchored}, anchor bought by >20% of households: {ubiq} ({100*ubiq/max(anchored,1):.1f} %)")
print(f"lists with a look-alike pair: {with_alike} of {lists}")
print("reason codes:", dict(codes.most_common()))
for e in examples: print(e)
