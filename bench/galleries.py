"""Benchmark: the face galleries of many communities in web processes: memory and cold searches.

Builds ``--communities`` x ``--templates`` face templates (synthetic 128-d vectors of norm
0.9, one person each, encrypted with Fernet as enrolment stores them) in a throwaway SQLite
database with bulk inserts, and says how long that took. Then each way of holding galleries
runs in a fresh process of its own (its memory is its own), on the same database:

- ``before``: as the server held galleries before the budget (one ``Gallery`` per
  community filled template by template, never dropped, a copy in every process);
- ``unbounded``: the cache with no budget and no shared files;
- ``budget``: the cache with ``FACE_GALLERY_MEMORY_MB=--budget-mb``, no shared files;
- ``shared``: the budget and the shared files, first in one process that finds no files
  (it decrypts and writes them), then in two processes at once that map them.

Each process searches (one probe each, a template of the community, checked to match):
``--cold`` communities it has not seen (its first search there: the version read, the
load and the search), then every community once ("touch all": RSS is read after it), then
``--cold`` communities it touched last (warm) and ``--cold`` it touched first (dropped
again under a budget: a reload). The parent also times the stages of one community's load.

    .venv/bin/python -m bench.galleries [--communities 2500] [--templates 1200]
        [--budget-mb 256] [--cold 200] [--modes before,unbounded,budget,shared] [--force]

One search's cost at community gallery sizes (2,000-30,000) beside 100,000 is printed by
``python -m bench.face_stages door``.
"""

from __future__ import annotations

import os

# As the server does (server/__init__.py), before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet
from flask_migrate import upgrade
from sqlalchemy import select

from bench.harness import add_load_flag, bench_settings, check_load
from bench.stats import percentile
from gatekeeper.faces import template_from_bytes, template_to_bytes
from gatekeeper.gallery import Gallery, GalleryArrays
from server import create_app
from server.core import crypto
from server.extensions import db
from server.models import Community, FaceGallery, FaceTemplate
from server.people import galleries as gallery_module
from server.people.galleries import GalleryFiles, galleries

MIB = 1024 * 1024
STAMP = datetime(2026, 1, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def community_id(index: int) -> str:
    return f"com_bench{index:05d}"


def faces(index: int, count: int) -> np.ndarray:
    """Community ``index``'s templates: the same vectors in the parent and the children."""
    vectors = np.random.default_rng(index).normal(size=(count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors * np.float32(0.9)  # real descriptors have norms near 0.9


def build_database(path: Path, data_key: str, communities: int, templates: int) -> float:
    """The communities, people, encrypted templates and gallery versions; seconds taken."""
    started = time.perf_counter()
    app = create_app(bench_settings(path.parent, f"sqlite:///{path}", DATA_KEY=data_key))
    with app.app_context():
        upgrade()
        db.session.add_all(
            Community(id=community_id(i), name=f"Bench {i}", timezone="Asia/Shanghai", settings={})
            for i in range(communities)
        )
        db.session.commit()
    fernet = Fernet(data_key)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    for index in range(communities):
        cid = community_id(index)
        people = [f"per_b{index:05d}x{row:05d}" for row in range(templates)]
        connection.executemany(
            "INSERT INTO people (id, community_id, name, status, lives_alone, wander_risk,"
            " created_at, updated_at) VALUES (?, ?, ?, 'active', 0, 0, ?, ?)",
            [(pid, cid, f"P{row}", STAMP, STAMP) for row, pid in enumerate(people)],
        )
        connection.executemany(
            "INSERT INTO face_templates (id, community_id, person_id, model, template_encrypted,"
            " created_at, updated_at) VALUES (?, ?, ?, 'bench', ?, ?, ?)",
            [
                (
                    f"fce_b{index:05d}x{row:05d}",
                    cid,
                    pid,
                    fernet.encrypt(template_to_bytes(v)),
                    STAMP,
                    STAMP,
                )
                for row, (pid, v) in enumerate(zip(people, faces(index, templates), strict=True))
            ],
        )
        # As if they were enrolled in one go: one change, version 1.
        connection.execute(
            "INSERT INTO face_galleries (community_id, version) VALUES (?, 1)", (cid,)
        )
        connection.execute(
            "INSERT INTO face_gallery_changes (community_id, version, template_id, person_id,"
            " op, at) VALUES (?, 1, ?, ?, 'add', ?)",
            (cid, f"fce_b{index:05d}x00000", people[0], STAMP),
        )
        if index % 50 == 49:
            connection.commit()
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return time.perf_counter() - started


def memory() -> dict[str, float]:
    """This process's resident memory in MiB: RSS and its anonymous and file-backed parts
    (/proc/self/status), and PSS (shared pages divided among the processes mapping them)."""
    figures = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            figures[key] = int(value.split()[0]) / 1024
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            figures["Pss"] = int(line.split()[1]) / 1024
    return figures


def full_collections() -> list[float]:
    """The pauses (ms) of the garbage collector's full collections from now on: they land in
    whichever search is running, here as in a server, and make most of the P99s."""
    pauses: list[float] = []
    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(note)
    return pauses


class Legacy:
    """Galleries held as before the budget: filled template by template, never dropped."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Gallery, int]] = {}

    def gallery(self, cid: str) -> Gallery:
        version = (
            db.session.scalar(select(FaceGallery.version).where(FaceGallery.community_id == cid))
            or 0
        )
        entry = self.entries.get(cid)
        if entry is None:
            gallery = Gallery()
            rows = db.session.execute(
                select(
                    FaceTemplate.id, FaceTemplate.person_id, FaceTemplate.template_encrypted
                ).where(FaceTemplate.community_id == cid)
            )
            gallery.add_many(
                [(tid, pid, template_from_bytes(crypto.decrypt(blob))) for tid, pid, blob in rows]
            )
            entry = self.entries[cid] = (gallery, version)
        return entry[0]


def child(args: argparse.Namespace) -> None:
    """One web process's life: cold searches, touch all, RSS, warm and dropped searches."""
    budget_mb = 1024 * 1024 if args.child == "unbounded" else args.budget_mb  # 1 TiB: none
    settings = {"DATA_KEY": args.data_key, "FACE_GALLERY_MEMORY_MB": str(budget_mb)}
    settings["FACE_GALLERY_DIR"] = args.files or "off"
    app = create_app(bench_settings(Path(args.workdir), args.database_url, **settings))
    communities, templates = args.communities, args.templates
    with app.app_context():
        db.session.scalar(select(FaceGallery.version).limit(1))  # connect, warm the ORM
        cache = Legacy() if args.child == "before" else galleries(app)
        probes = {i: faces(i, 1)[0] for i in range(communities)}
        start_memory = memory()

        def search(index: int) -> float:
            started = time.perf_counter()
            match = cache.gallery(community_id(index)).search(
                probes[index], tolerance=0.5, margin=0.06
            )
            elapsed = (time.perf_counter() - started) * 1000
            if match.person_id != f"per_b{index:05d}x00000":
                raise SystemExit(f"community {index}: found {match.person_id}")
            db.session.commit()  # end the read transaction, as a request does
            return elapsed

        order = np.random.default_rng(args.seed).permutation(communities).tolist()
        pauses = full_collections()
        cold = [search(i) for i in order[: args.cold]]
        started = time.perf_counter()
        for i in order:
            search(i)
        touch_s = time.perf_counter() - started
        after = memory()
        warm = [search(i) for i in reversed(order[-args.cold :])]
        dropped = [search(i) for i in order[args.cold : 2 * args.cold]]
        stats = None if isinstance(cache, Legacy) else cache.stats()
        gc.callbacks.clear()
    print(
        json.dumps(
            {
                "mode": args.child,
                "start": start_memory,
                "after": after,
                "touch_s": touch_s,
                "cold": cold,
                "warm": warm,
                "dropped": dropped,
                "templates": communities * templates,
                "stats": None if stats is None else stats.__dict__,
                "gc_pauses": pauses,
            }
        ),
        flush=True,
    )


def stage_times(app: Any, communities: list[str], files: GalleryFiles) -> dict[str, float]:
    """Milliseconds per community for each stage of a load, and the old per-template path."""
    totals = dict.fromkeys(("read", "decrypt", "arrays", "write", "map", "before"), 0.0)
    with app.app_context():
        for cid in communities:
            t0 = time.perf_counter()
            rows = db.session.execute(
                select(
                    FaceTemplate.id, FaceTemplate.person_id, FaceTemplate.template_encrypted
                ).where(FaceTemplate.community_id == cid)
            ).all()
            t1 = time.perf_counter()
            tids, pids, tokens = zip(*rows, strict=True)
            plain = crypto.decrypt_many(tokens)
            t2 = time.perf_counter()
            arrays = GalleryArrays.build(list(tids), list(pids), gallery_module._templates(plain))
            t3 = time.perf_counter()
            files.write(cid, 1, "1:bench:add", arrays)
            t4 = time.perf_counter()
            mapped = files.open(cid, 1, "1:bench:add")
            t5 = time.perf_counter()
            if mapped is None or len(mapped) != len(rows):
                raise SystemExit(f"{cid}: the file written did not map back")
            gallery = Gallery()
            gallery.add_many([(t, p, template_from_bytes(crypto.decrypt(b))) for t, p, b in rows])
            t6 = time.perf_counter()
            for key, value in zip(
                totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True
            ):
                totals[key] += value * 1000 / len(communities)
            db.session.commit()
    return totals


def run_children(modes: list[tuple[str, str | None]], common: list[str]) -> list[dict[str, Any]]:
    """Run one child per (mode, files) at once; their reports, in order."""
    processes = [
        subprocess.Popen(  # noqa: S603 (this interpreter and this module)
            [sys.executable, "-m", "bench.galleries", "--child", mode, *common]
            + ["--seed", str(index + 1)]  # processes at once search in different orders
            + (["--files", files] if files else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        for index, (mode, files) in enumerate(modes)
    ]
    reports = []
    for process in processes:
        out, _ = process.communicate(timeout=7200)
        if process.returncode:
            raise SystemExit(f"a child failed ({process.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def row(name: str, report: dict[str, Any]) -> str:
    after, start = report["after"], report["start"]
    p = percentile
    return (
        f"{name:<22} {report['touch_s']:7.1f} {after['VmRSS']:8.0f}"
        f" {after['VmRSS'] - start['VmRSS']:8.0f}"
        f" {after['RssAnon']:8.0f} {after['RssFile']:8.0f} {after['Pss']:8.0f}"
        f" {p(report['cold'], 50):7.1f} {p(report['cold'], 99):7.1f}"
        f" {p(report['warm'], 50):6.2f} {p(report['warm'], 99):6.2f}"
        f" {p(report['dropped'], 50):7.1f} {p(report['dropped'], 99):7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=2500)
    parser.add_argument("--templates", type=int, default=1200)
    parser.add_argument("--budget-mb", type=int, default=256)
    parser.add_argument("--cold", type=int, default=200)
    parser.add_argument("--modes", default="before,unbounded,budget,shared")
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    # For the children:
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--data-key", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    add_load_flag(parser)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.cold = min(args.cold, args.communities // 2)

    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-galleries-"))
    try:
        data_key = Fernet.generate_key().decode()
        database = workdir / "bench.db"
        total = args.communities * args.templates
        check_load("database build and one community's load", args.force)
        load_s = build_database(database, data_key, args.communities, args.templates)
        print(
            f"database: {args.communities} communities x {args.templates} templates = {total:,} "
            f"encrypted templates (and people) loaded in {load_s:.0f} s ({total / load_s:,.0f}/s), "
            f"{database.stat().st_size / MIB / 1024:.1f} GiB SQLite"
        )
        app = create_app(bench_settings(workdir, f"sqlite:///{database}", DATA_KEY=data_key))
        sample = [community_id(i) for i in range(min(50, args.communities))]
        stages = stage_times(app, sample, GalleryFiles(workdir / "stages", b"k" * 32))
        shutil.rmtree(workdir / "stages")
        loaded = sum(v for k, v in stages.items() if k in ("read", "decrypt", "arrays"))
        print(
            f"one community's load ({args.templates} templates, mean of {len(sample)}): "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in stages.items() if k != "before")
            + f"; decryption {stages['decrypt'] / loaded:.0%} of read+decrypt+arrays; "
            f"the old template-by-template load {stages['before']:.2f} ms after the read"
        )
        common = [
            "--workdir", str(workdir), "--database-url", f"sqlite:///{database}",
            "--data-key", data_key, "--communities", str(args.communities),
            "--templates", str(args.templates), "--budget-mb", str(args.budget_mb),
            "--cold", str(args.cold),
        ]  # fmt: skip
        files = str(workdir / "face-galleries")
        results: list[tuple[str, dict[str, Any]]] = []
        check_load("searches in fresh processes", args.force)
        for mode in args.modes.split(","):
            if mode == "shared":
                [first] = run_children([("shared", files)], common)
                results.append(("shared, builds files", first))
                pair = run_children([("shared", files), ("shared", files)], common)
                results += [("shared, maps (1 of 2)", pair[0]), ("shared, maps (2 of 2)", pair[1])]
            else:
                [report] = run_children([(mode, None)], common)
                results.append((mode, report))
        print(
            f"\nsearches: --cold {args.cold}; budget {args.budget_mb} MiB; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(
            f"{'':<22} {'touch':>7} {'RSS':>8} {'growth':>8} {'anon':>8} {'file':>8} {'PSS':>8}"
            f" {'cold first search':>15} {'warm search':>13} {'after eviction':>15}\n"
            f"{'':<22} {'all s':>7} {'MiB':>8} {'MiB':>8} {'MiB':>8} {'MiB':>8} {'MiB':>8}"
            f" {'P50':>7} {'P99':>7} {'P50':>6} {'P99':>6} {'P50':>7} {'P99':>7}   (ms)"
        )
        for name, report in results:
            print(row(name, report))
        for name, report in results:
            if report["stats"]:
                s = report["stats"]
                print(
                    f"{name:<22} holds {s['communities']} galleries, {s['nbytes'] / MIB:.0f} MiB; "
                    f"loads: {s['loads_from_database']} decrypted, {s['loads_from_file']} mapped; "
                    f"{s['files_written']} files written; {s['evictions']} evictions"
                )
        for name, report in results:
            pauses = report["gc_pauses"]
            print(
                f"{name:<22} {len(pauses)} full garbage collections while searching, "
                f"{max(pauses, default=0):.0f} ms the longest"
            )
        reports = dict(results)
        if "before" in reports:
            before = reports["before"]["after"]["VmRSS"]
            for name, report in results[1:]:
                print(f"RSS before / {name:<22} {before / report['after']['VmRSS']:6.1f}x")
        shared = [r for n, r in results if n.startswith("shared, maps")]
        if shared:
            pss = sum(r["after"]["Pss"] for r in shared)
            print(f"two sharing processes: PSS together {pss:.0f} MiB")
        if "before" in reports and "shared, maps (1 of 2)" in reports:
            b, s = reports["before"], reports["shared, maps (1 of 2)"]
            print(
                "cold first search, before / shared (files there): P50 "
                f"{percentile(b['cold'], 50) / percentile(s['cold'], 50):.1f}x, P99 "
                f"{percentile(b['cold'], 99) / percentile(s['cold'], 99):.1f}x; "
                "shared, after eviction / warm: P50 "
                f"{percentile(s['dropped'], 50) / percentile(s['warm'], 50):.1f}x"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
