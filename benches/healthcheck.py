"""Healthcheck rows for benches/run: how long a budgeted probe takes, and within how many
probes a change is found, on the benchmark trees; and the same probe in a container
limited with `docker run --cpus 0.5`, the case a Kubernetes exec probe (timeoutSeconds: 1)
must survive.

    benches/run --healthcheck-only                 # these rows only, on py, node and m200k
    benches/run --healthcheck-only --hc-docker ''  # without the container row

On the host: `treeseal run -- true` writes the snapshot, then PROBES probes run one after
another (`healthcheck --explain`), each timed from exec to exit. The bounds are the ones
each probe prints (at the pace it measured); the table gives their median and worst.
In the container: an image FROM scratch with a static busybox (`sleep`), the treeseal
binary and the tree at /app (as tests/docker.rs builds them); the ENTRYPOINT gate verifies
/app and writes the snapshot; once its line is in the log, PROBES `docker exec
... healthcheck --explain` are timed from the host, `docker exec` overhead included (a
kubelet's exec probe pays it too).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import time

PROBES = 10


def _probe(argv: list[str], env: dict | None) -> dict:
    t = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t
    try:
        line, explain = (json.loads(x) for x in r.stdout.splitlines())
        assert r.returncode == 0 and line["event"] == "healthy" and explain["event"] == "explain"
        return {"ok": True, "wall": wall, "entries": int(line["entries_checked"]),
                "total": int(line["entries"]), "bytes": int(line["bytes_rehashed"]),
                "total_bytes": int(line["bytes"]), "stamp_bound": int(explain["stamp_bound"]),
                "content_bound": int(explain["content_bound"])}
    except (ValueError, KeyError, AssertionError):
        return {"ok": False, "note": (r.stdout + r.stderr).strip()[-300:]}


def _summary(name: str, where: str, budget: int, probes: list[dict]) -> dict:
    ok = [p for p in probes if p["ok"]]
    if len(ok) != len(probes) or not ok:
        return {"tree": name, "where": where, "ok": False,
                "note": next((p["note"] for p in probes if not p["ok"]), "no probes")}
    walls = [p["wall"] for p in ok]
    entries = sum(p["entries"] for p in ok) / len(ok)
    data = sum(p["bytes"] for p in ok) / len(ok)
    # At the mean pace of the probes in a row: every entry's stamps, and every byte, once.
    bound = lambda total, per: 1 if per >= total else math.ceil(total / per) + 1  # noqa: E731
    return {"tree": name, "where": where, "ok": True, "budget": budget, "probes": len(ok),
            "wall_median": statistics.median(walls), "wall_max": max(walls),
            "entries_mean": entries, "total": ok[0]["total"], "bytes_mean": data,
            "total_bytes": ok[0]["total_bytes"],
            "stamp_bound": bound(ok[0]["total"], entries), "content_bound": bound(ok[0]["total_bytes"], data),
            "stated": (statistics.median(p["stamp_bound"] for p in ok),
                       statistics.median(p["content_bound"] for p in ok))}


def host_rows(treeseal: str, trees: list[tuple[str, str]], work: str, budget: int, log) -> list[dict]:
    rows = []
    for name, tree in trees:
        d = os.path.join(work, "hc-" + name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        manifest, state = os.path.join(d, "seal"), os.path.join(d, "state")
        subprocess.run([treeseal, "lock", tree, "-o", manifest], check=True, capture_output=True)
        env = dict(os.environ, TREESEAL_ROOT=tree, TREESEAL_MANIFEST=manifest, TREESEAL_STATE=state,
                   TREESEAL_QUIET="1", TREESEAL_HEALTH_BUDGET=str(budget), TREESEAL_LOG="json")
        subprocess.run([treeseal, "run", "--", "true"], env=env, check=True, capture_output=True)
        probes = [_probe([treeseal, "healthcheck", "--explain"], env) for _ in range(PROBES)]
        rows.append(_summary(name, "host", budget, probes))
        log(f"healthcheck {name} (host): {rows[-1]}")
    return rows


def docker_rows(treeseal: str, trees: list[tuple[str, str]], work: str, budget: int, cpus: str, log) -> list[dict]:
    rows = []
    busybox = "/bin/busybox"
    if not shutil.which("docker") or not os.path.exists(busybox):
        return [{"tree": n, "where": f"docker --cpus {cpus}", "ok": False,
                 "note": "needs docker and a static /bin/busybox"} for n, _ in trees]
    for name, tree in trees:
        ctx = os.path.join(work, "hc-docker-" + name)
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        # Hard links: the tree is not copied, only linked into the build context.
        subprocess.run(["cp", "-al", tree, os.path.join(ctx, "app")], check=True)
        subprocess.run([treeseal, "lock", os.path.join(ctx, "app")], check=True, capture_output=True)
        shutil.copy(treeseal, os.path.join(ctx, "treeseal"))
        shutil.copy(busybox, os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY busybox /bin/busybox\nCOPY treeseal /treeseal\nCOPY app /app\n"
                    'ENTRYPOINT ["/treeseal", "run", "--"]\nCMD ["/bin/busybox", "sleep", "3600"]\n')
        tag = f"treeseal-bench-hc-{os.getpid()}-{name}"
        where = f"docker --cpus {cpus}"
        try:
            b = subprocess.run(["docker", "build", "-q", "-t", tag, ctx], capture_output=True, text=True,
                               env=dict(os.environ, DOCKER_BUILDKIT="0"))
            if b.returncode != 0:
                rows.append({"tree": name, "where": where, "ok": False, "note": b.stderr.strip()[-300:]})
                continue
            subprocess.run(["docker", "run", "-d", "--name", tag, "--cpus", cpus,
                            "-e", f"TREESEAL_HEALTH_BUDGET={budget}", tag], check=True, capture_output=True)
            started = time.monotonic()
            while "verified" not in subprocess.run(["docker", "logs", tag], capture_output=True,
                                                   text=True).stderr:
                if time.monotonic() - started > 600:
                    raise RuntimeError("the gate did not verify /app within 600 s")
                time.sleep(1)
            gate_s = time.monotonic() - started
            probes = [_probe(["docker", "exec", "-e", "TREESEAL_LOG=json", tag, "/treeseal", "healthcheck",
                              "--explain"], None)
                      for _ in range(PROBES)]
            row = _summary(name, where, budget, probes)
            row["gate_s"] = gate_s
            rows.append(row)
            log(f"healthcheck {name} ({where}): {row}")
        finally:
            subprocess.run(["docker", "rm", "-f", tag], capture_output=True)
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
            shutil.rmtree(ctx, ignore_errors=True)
    return rows


def render(rows: list[dict]) -> list[str]:
    mib = 1 << 20
    L = ["## Healthcheck probes", "",
         f"`treeseal healthcheck --explain` with a trusted snapshot, {PROBES} probes in a row per tree, "
         "each timed from exec to exit (in the container row from the host, `docker exec` included). "
         "Per probe: the mean of the entries whose stamps were compared and of the bytes the content "
         "slice re-hashed. Bounds, at that mean pace: within how many probes every entry's stamps were "
         "compared (a change that moves a timestamp is found) and every byte re-hashed (a change that "
         "moves none is found); in brackets, the median of what each probe's `--explain` stated from "
         "its own pace.", "",
         "| tree | where | budget | probe time median / max | stamps per probe | bytes per probe | "
         "bound: timestamp moved | bound: no timestamp moved |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r.get("ok"):
            L.append(f"| {r['tree']} | {r['where']} | – | {r.get('note', 'failed')} | – | – | – | – |")
            continue
        L.append(f"| {r['tree']} | {r['where']} | {r['budget']} ms | {r['wall_median'] * 1000:.0f} / "
                 f"{r['wall_max'] * 1000:.0f} ms | {r['entries_mean']:.0f} of {r['total']} | "
                 f"{r['bytes_mean'] / mib:.1f} of {r['total_bytes'] / mib:.1f} MiB | "
                 f"{r['stamp_bound']} probes ({r['stated'][0]:g}) | {r['content_bound']} probes "
                 f"({r['stated'][1]:g}) |")
    for r in rows:
        if r.get("gate_s"):
            L.append("")
            L.append(f"In the container, the gate's full verification of {r['tree']} before the app started "
                     f"took about {r['gate_s']:.0f} s at {r['where'].split()[-1]} CPU; a probe before that "
                     "finds no snapshot and does a full check, which is what a startupProbe covers.")
    return L
