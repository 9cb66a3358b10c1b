"""Reads engauge's serialized sketches with the Python `datasketches` package (Apache DataSketches)
and checks that it computes the same estimates as engauge did.

Two ways to call it:

* `sketch_interop.py KIND BASE64 [EXPECTED]` with KIND `hll` or `theta`: prints the estimate of one
  base64 image; exits 1 if EXPECTED is given and differs.
* JSON on stdin (what `crates/engauge-core/tests/sketch_interop.rs` sends):

      {"sketches": [{"name": "...", "kind": "hll" | "theta", "base64": "...", "estimate": 123.4,
                     "lg_k": 12, "rebuild": [USERS, ...]}],
       "set_ops": [{"name": "...", "op": "intersection" | "a_not_b" | "union" | "hll_union",
                    "inputs": ["sketch name", "sketch name"], "estimate": 123.4}]}

  where USERS is `{"prefix": "user-", "start": 0, "end": 50000}` (ids prefix+i, in that order)
  or a list of ids. With `rebuild`, Python also sketches those ids itself (one sketch per USERS
  entry, in order, then a union when there are several) and must reach the same estimate.
  Prints {"results": [...], "ok": bool} as JSON; exits 1 when any estimate differs.

Exit status 2 means the `datasketches` package is missing: run scripts/setup-test-deps.
"""
import base64
import json
import sys

try:
    import datasketches as ds
except ImportError as err:  # pragma: no cover - the message is the point
    print(f"python datasketches missing ({err}): run scripts/setup-test-deps", file=sys.stderr)
    sys.exit(2)


def deserialize(kind, b64):
    data = base64.b64decode(b64, validate=True)
    if kind == "hll":
        return ds.hll_sketch.deserialize(data)
    if kind == "theta":
        return ds.compact_theta_sketch.deserialize(data)
    raise ValueError(f"unknown sketch kind {kind!r}")


def user_ids(users):
    if isinstance(users, list):
        return users
    prefix = users["prefix"]
    return (f"{prefix}{i}" for i in range(users["start"], users["end"]))


def rebuild(kind, lg_k, parts):
    """Sketches the ids with Python's own update path; returns (estimate, serialized image)."""
    sketches = []
    for users in parts:
        if kind == "hll":
            s = ds.hll_sketch(lg_k, ds.tgt_hll_type.HLL_8)
        else:
            s = ds.update_theta_sketch(lg_k)
        for uid in user_ids(users):
            s.update(uid)
        sketches.append(s)
    if kind == "hll":
        if len(sketches) == 1:
            result = sketches[0]
        else:
            union = ds.hll_union(lg_k)
            for s in sketches:
                union.update(s)
            result = union.get_result(ds.tgt_hll_type.HLL_8)
        return result.get_estimate(), result.serialize_compact()
    if len(sketches) == 1:
        result = sketches[0].compact()
    else:
        union = ds.theta_union(lg_k)
        for s in sketches:
            union.update(s)
        result = union.get_result()
    return result.get_estimate(), result.serialize()


def set_op(op, inputs, lg_k):
    if op == "intersection":
        inter = ds.theta_intersection()
        for s in inputs:
            inter.update(s)
        return inter.get_result().get_estimate()
    if op == "a_not_b":
        a, b = inputs
        return ds.theta_a_not_b().compute(a, b).get_estimate()
    if op == "hll_union":
        union = ds.hll_union(lg_k)
        for s in inputs:
            union.update(s)
        return union.get_result(ds.tgt_hll_type.HLL_8).get_estimate()
    if op == "union":
        union = ds.theta_union(lg_k)
        for s in inputs:
            union.update(s)
        return union.get_result().get_estimate()
    raise ValueError(f"unknown set operation {op!r}")


def check_json(request):
    results = []
    named = {}
    for spec in request.get("sketches", []):
        sketch = deserialize(spec["kind"], spec["base64"])
        named[spec["name"]] = sketch
        row = {
            "name": spec["name"],
            "rust_estimate": spec["estimate"],
            "python_estimate": sketch.get_estimate(),
        }
        ok = row["python_estimate"] == spec["estimate"]
        if "rebuild" in spec:
            estimate, image = rebuild(spec["kind"], spec.get("lg_k", 12), spec["rebuild"])
            row["rebuilt_estimate"] = estimate
            row["rebuilt_base64"] = base64.b64encode(image).decode("ascii")
            ok = ok and estimate == spec["estimate"]
        row["ok"] = ok
        results.append(row)
    for spec in request.get("set_ops", []):
        inputs = [named[name] for name in spec["inputs"]]
        estimate = set_op(spec["op"], inputs, spec.get("lg_k", 12))
        results.append(
            {
                "name": spec["name"],
                "rust_estimate": spec["estimate"],
                "python_estimate": estimate,
                "ok": estimate == spec["estimate"],
            }
        )
    return {"results": results, "ok": all(r["ok"] for r in results)}


def main(argv):
    if len(argv) >= 3:
        estimate = deserialize(argv[1], argv[2]).get_estimate()
        print(repr(estimate))
        if len(argv) >= 4 and estimate != float(argv[3]):
            print(f"expected {argv[3]}, got {estimate!r}", file=sys.stderr)
            return 1
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 64
    report = check_json(json.load(sys.stdin))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
