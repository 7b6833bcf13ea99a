"""Deterministic benchmark trees for benches/run (stdlib only).

Every tree is a pure function of (kind, parameters, seed, GENERATOR_VERSION): the layout
and sizes come from ``random.Random(seed)``, the bytes from a pool of pseudo-random bytes
drawn from the same generator (each file gets its own slice of the pool plus a
per-file header, so no two files share content). A tree is written once into
``<trees>/<id>/`` next to ``<trees>/<id>.json`` (its stamp) and reused while the stamp
matches; a stale tree is removed and written again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import struct
import time

# Bump whenever a change below alters any generated tree.
GENERATOR_VERSION = 1

MiB = 1 << 20
GiB = 1 << 30

# Full-size parameters; --quick and --scale derive smaller ones from these.
FULL = {
    "py": {"files": 40_000, "bytes": 600 * MiB},
    "node": {"files": 150_000},
    "huge": {"count": 4, "min": 512 * MiB, "max": 1024 * MiB},
    "m200k": {"entries": 200_000},
    "m1m": {"entries": 1_000_000},
    "tiny": {"files": 10},
}
QUICK = {
    "py": {"files": 2_000, "bytes": 32 * MiB},
    "node": {"files": 5_000},
    "huge": {"count": 3, "min": 64 * MiB, "max": 64 * MiB},
    "m200k": {"entries": 20_000},
    "m1m": {"entries": 50_000},
    "tiny": {"files": 10},
}

DESCRIPTIONS = {
    "py": "python app + venv (site-packages, __pycache__, MB-sized shared objects)",
    "node": "node_modules (tiny files, deep nesting)",
    "huge": "a few huge files",
    "m200k": "200k-entry manifest (tiny files)",
    "m1m": "1M-entry manifest (tiny files; the memory rows)",
    "tiny": "10-file tree (start-up overhead)",
}


def params_for(kind: str, quick: bool, scale: float) -> dict:
    base = dict((QUICK if quick else FULL)[kind])
    if scale != 1.0 and kind != "tiny":
        for k in ("files", "bytes", "entries", "min", "max"):
            if k in base:
                base[k] = max(1, int(base[k] * scale))
    return base


def tree_id(kind: str, quick: bool, scale: float, seed: int) -> str:
    tag = "quick" if quick else "full"
    if scale != 1.0:
        tag += f"-x{scale:g}"
    return f"{kind}-{tag}-s{seed}"


class Pool:
    """Pseudo-random bytes for file contents, fast enough for gigabytes."""

    SIZE = 8 * MiB

    def __init__(self, rng: random.Random):
        raw = rng.randbytes(self.SIZE)
        self.buf = raw + raw  # so any slice of up to SIZE bytes is contiguous
        self.rng = rng

    def content(self, n: int, tag: bytes) -> bytes:
        if n == 0:
            return b""
        head = hashlib.blake2b(tag, digest_size=32).digest()
        if n <= 32:
            return head[:n]
        out = bytearray()
        out += head
        need = n - 32
        while need > 0:
            take = min(need, self.SIZE)
            off = self.rng.randrange(self.SIZE)
            out += self.buf[off : off + take]
            need -= take
        return bytes(out)


SYLL = [
    "al", "be", "co", "da", "el", "fo", "ga", "hu", "io", "ja", "ka", "lo", "mi", "ne",
    "or", "pa", "qu", "ro", "si", "tu", "ur", "vi", "wa", "xe", "yo", "za", "py", "js",
    "net", "lib", "core", "util", "async", "http", "json", "yaml", "data", "test",
]


def word(rng: random.Random, lo: int = 2, hi: int = 4) -> str:
    return "".join(rng.choice(SYLL) for _ in range(rng.randint(lo, hi)))


def log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class Plan:
    """The entries of a tree before anything is written."""

    def __init__(self):
        self.files: list[tuple[str, int, int]] = []  # (relpath, size, mode)
        self.links: list[tuple[str, str]] = []  # (relpath, target)
        self.dirs: set[str] = set()
        self.used: set[str] = set()

    def add_dir(self, rel: str):
        while rel and rel not in self.dirs:
            self.dirs.add(rel)
            rel = os.path.dirname(rel)

    def add_file(self, rel: str, size: int, mode: int = 0o644) -> bool:
        if rel in self.used:
            return False
        self.used.add(rel)
        self.add_dir(os.path.dirname(rel))
        self.files.append((rel, size, mode))
        return True

    def add_link(self, rel: str, target: str):
        if rel in self.used:
            return
        self.used.add(rel)
        self.add_dir(os.path.dirname(rel))
        self.links.append((rel, target))


def plan_py(rng: random.Random, p: dict) -> Plan:
    target_files = p["files"]
    target_bytes = p["bytes"]
    plan = Plan()

    def src_size() -> int:
        r = rng.random()
        if r < 0.04:
            return 0  # empty __init__.py and friends
        if r < 0.93:
            return log_uniform(rng, 1024, 16 * 1024)
        return log_uniform(rng, 16 * 1024, 128 * 1024)

    # The application itself.
    n_app = max(5, target_files // 100)
    for i in range(n_app):
        d = "app/" + "/".join(word(rng, 1, 2) for _ in range(rng.randint(0, 3)))
        ext = rng.choice([".py"] * 8 + [".html", ".js", ".css", ".json"])
        plan.add_file(f"{d.rstrip('/')}/{word(rng)}{ext}", src_size())
    plan.add_file("app/requirements.txt", 1200)
    # The venv skeleton.
    venv = "venv"
    plan.add_file(f"{venv}/pyvenv.cfg", 180)
    plan.add_file(f"{venv}/bin/python", 14 * 1024, 0o755)
    plan.add_link(f"{venv}/bin/python3", "python")
    plan.add_link(f"{venv}/bin/python3.11", "python")
    plan.add_link(f"{venv}/lib64", "lib")
    for _ in range(max(3, target_files // 1500)):
        plan.add_file(f"{venv}/bin/{word(rng)}", rng.randint(200, 400), 0o755)
    sp = f"{venv}/lib/python3.11/site-packages"
    n_so = max(3, target_files // 600)  # shared objects, filled up to the byte target below
    so_paths: list[tuple[str, int]] = []
    pkg_names: list[str] = []
    while len(plan.files) + n_so < target_files:
        pkg = word(rng)
        if pkg in pkg_names:
            continue
        pkg_names.append(pkg)
        ver = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        di = f"{sp}/{pkg}-{ver}.dist-info"
        for name, size in (
            ("METADATA", log_uniform(rng, 1500, 30_000)),
            ("RECORD", log_uniform(rng, 500, 40_000)),
            ("WHEEL", 110),
            ("INSTALLER", 4),
            ("top_level.txt", len(pkg) + 1),
            ("LICENSE", log_uniform(rng, 1000, 12_000)),
        ):
            plan.add_file(f"{di}/{name}", size)
        # Package size: most small, some large (numpy-like).
        n_mod = log_uniform(rng, 3, 600)
        subdirs = [f"{sp}/{pkg}"]
        for _ in range(max(0, int(math.sqrt(n_mod)) - 1)):
            parent = rng.choice(subdirs)
            if parent.count("/") - sp.count("/") >= 5:
                continue
            subdirs.append(f"{parent}/{word(rng, 1, 3)}")
        for d in subdirs:
            plan.add_file(f"{d}/__init__.py", 0 if rng.random() < 0.6 else src_size())
        for _ in range(n_mod):
            if len(plan.files) + n_so >= target_files:
                break
            d = rng.choice(subdirs)
            mod = word(rng)
            size = src_size()
            if not plan.add_file(f"{d}/{mod}.py", size):
                continue
            if rng.random() < 0.6 and len(plan.files) + n_so < target_files:
                plan.add_file(f"{d}/__pycache__/{mod}.cpython-311.pyc", max(100, int(size * 0.7)))
            if rng.random() < 0.02 and len(plan.files) + n_so < target_files:
                plan.add_file(f"{d}/{mod}.pyi", src_size())
        if len(so_paths) < n_so and rng.random() < 0.35:
            d = rng.choice(subdirs)
            so_paths.append((f"{d}/_{word(rng)}.cpython-311-x86_64-linux-gnu.so", 0o755))
            if len(so_paths) < n_so and rng.random() < 0.3:
                so_paths.append((f"{sp}/{pkg}.libs/lib{word(rng)}-{rng.randrange(16**8):08x}.so.1", 0o755))
    while len(so_paths) < n_so:
        pkg = rng.choice(pkg_names) if pkg_names else "misc"
        so_paths.append((f"{sp}/{pkg}/_{word(rng)}{len(so_paths)}.cpython-311-x86_64-linux-gnu.so", 0o755))
    # Fill the remaining bytes with the shared objects (log-uniform weights).
    small = sum(s for _, s, _ in plan.files)
    rest = max(n_so * 64 * 1024, target_bytes - small)
    weights = [math.exp(rng.uniform(0, math.log(100))) for _ in so_paths]
    total_w = sum(weights)
    for (rel, mode), w in zip(so_paths, weights):
        plan.add_file(rel, max(64 * 1024, int(rest * w / total_w)), mode)
    return plan


def plan_node(rng: random.Random, p: dict) -> Plan:
    target = p["files"]
    plan = Plan()

    def tiny() -> int:
        return min(6000, max(0, int(rng.lognormvariate(math.log(300), 0.9))))

    plan.add_file("package.json", 900)
    plan.add_file("package-lock.json", 40_000)
    names: list[str] = []

    def package(base: str, depth: int):
        scoped = rng.random() < 0.15
        name = (f"@{word(rng, 1, 2)}/" if scoped else "") + word(rng, 1, 3)
        root = f"{base}/{name}"
        if root + "/package.json" in plan.used:
            return
        names.append(root)
        plan.add_file(f"{root}/package.json", rng.randint(400, 2500))
        plan.add_file(f"{root}/README.md", tiny() * 3)
        plan.add_file(f"{root}/LICENSE", 1070)
        plan.add_file(f"{root}/index.js", tiny())
        dirs = [root]
        for _ in range(rng.randint(0, 4)):
            parent = rng.choice(dirs)
            if parent.count("/") - root.count("/") >= 4:
                continue
            dirs.append(f"{parent}/{rng.choice(['lib', 'dist', 'src', 'esm', 'cjs', 'types', 'utils', word(rng, 1, 2)])}")
        for _ in range(log_uniform(rng, 2, 60)):
            if len(plan.files) >= target:
                return
            ext = rng.choice([".js"] * 6 + [".d.ts", ".map", ".mjs", ".cjs", ".json"])
            plan.add_file(f"{rng.choice(dirs)}/{word(rng)}{ext}", tiny())
        if rng.random() < 0.05:
            plan.add_file(f"{root}/bin/cli.js", tiny(), 0o755)
            plan.add_link(f"node_modules/.bin/{word(rng)}", f"../{root[len('node_modules/'):]}/bin/cli.js"
                          if root.startswith("node_modules/") else "missing")
        if depth < 6 and rng.random() < 0.22:
            for _ in range(rng.randint(1, 4)):
                if len(plan.files) >= target:
                    return
                package(f"{root}/node_modules", depth + 1)

    while len(plan.files) < target:
        package("node_modules", 0)
    return plan


def plan_m200k(rng: random.Random, p: dict) -> Plan:
    entries = p["entries"]
    plan = Plan()
    per_dir = 100
    # entries = files + dirs; dirs = top + leaves, leaves hold per_dir files each.
    leaves = max(1, round(entries / (per_dir + 1)))
    top = max(1, int(math.sqrt(leaves)))
    files = max(1, entries - leaves - top)
    for i in range(files):
        leaf = i % leaves
        plan.add_file(f"d{leaf % top:03d}/e{leaf:05d}/f{i:06d}", rng.randint(0, 256))
    return plan


def plan_tiny(rng: random.Random, p: dict) -> Plan:
    plan = Plan()
    for i in range(p["files"]):
        plan.add_file(f"file{i:02d}.txt", rng.randint(100, 4000))
    return plan


def write_plan(plan: Plan, root: str, rng: random.Random):
    pool = Pool(rng)
    for d in sorted(plan.dirs):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for rel, size, mode in plan.files:
        path = os.path.join(root, rel)
        with open(path, "wb") as f:
            f.write(pool.content(size, rel.encode()))
        os.chmod(path, mode)
    for rel, target in plan.links:
        os.symlink(target, os.path.join(root, rel))
    for d in plan.dirs:
        os.chmod(os.path.join(root, d), 0o755)


def write_huge(root: str, rng: random.Random, p: dict) -> dict:
    block = rng.randbytes(MiB)
    doubled = block + block
    files, total = 0, 0
    for i in range(p["count"]):
        size = rng.randint(p["min"] // MiB, p["max"] // MiB) * MiB
        key = rng.randrange(1 << 62)
        with open(os.path.join(root, f"blob{i}.bin"), "wb", buffering=0) as f:
            for chunk in range(size // MiB):
                # A seeded 1 MiB block, rotated and stamped per chunk: every MiB differs.
                off = (chunk * 7919 + key) % MiB
                data = bytearray(doubled[off : off + MiB])
                data[:16] = struct.pack("<QQ", key, chunk)
                f.write(data)
        os.chmod(os.path.join(root, f"blob{i}.bin"), 0o644)
        files += 1
        total += size
    return {"files": files, "dirs": 0, "links": 0, "bytes": total}


def ensure_tree(trees_dir: str, kind: str, quick: bool, scale: float, seed: int, log=print) -> tuple[str, dict]:
    """Returns (path, stamp) of the tree, generating it unless an up-to-date copy exists."""
    tid = tree_id(kind, quick, scale, seed)
    path = os.path.join(trees_dir, tid)
    stamp_path = path + ".json"
    params = params_for(kind, quick, scale)
    want = {"generator_version": GENERATOR_VERSION, "kind": kind, "seed": seed, "params": params}
    if os.path.isdir(path) and os.path.exists(stamp_path):
        try:
            with open(stamp_path) as f:
                stamp = json.load(f)
            if all(stamp.get(k) == v for k, v in want.items()):
                return path, stamp
        except (OSError, ValueError):
            pass
        log(f"  tree {tid}: stale stamp, regenerating")
    os.makedirs(trees_dir, exist_ok=True)
    tmp = path + ".tmp"
    for old in (tmp, path):
        if os.path.lexists(old):
            shutil.rmtree(old)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    os.makedirs(tmp)
    t0 = time.monotonic()
    rng = random.Random(f"treeseal-bench:{kind}:{seed}")
    log(f"  generating tree {tid} ({DESCRIPTIONS[kind]}) ...")
    if kind == "huge":
        counts = write_huge(tmp, rng, params)
    else:
        plan = {"py": plan_py, "node": plan_node, "m200k": plan_m200k, "m1m": plan_m200k,
                "tiny": plan_tiny}[kind](rng, params)
        write_plan(plan, tmp, rng)
        counts = {
            "files": len(plan.files),
            "dirs": len(plan.dirs),
            "links": len(plan.links),
            "bytes": sum(s for _, s, _ in plan.files),
        }
    os.chmod(tmp, 0o755)
    os.rename(tmp, path)
    stamp = dict(want, id=tid, counts=counts, seconds=round(time.monotonic() - t0, 1))
    with open(stamp_path, "w") as f:
        json.dump(stamp, f, indent=1)
    log(f"  tree {tid}: {counts['files']} files, {counts['bytes'] / MiB:.0f} MiB in {stamp['seconds']} s")
    return path, stamp
