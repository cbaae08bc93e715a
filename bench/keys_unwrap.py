"""Unwrapping data keys: the local keyring against SoftHSM2 (PKCS#11), in one run.

Two measurements:

1. Per data key, in this process: ``provider.unwrap`` alone (µs), for the local
   keyring (AES-256-GCM in Python) and for ``Pkcs11KeyProvider`` on a SoftHSM2 token
   (RFC 5649 inside the token, the key read back, the session object destroyed);
   and the whole miss as a read pays it, ``KeyService.data_keys`` with the cache off:
   the wrapped key's row, the unwrap, and the durable entry in the unwrap ledger.
2. Read throughput of a server (``GET /fhir/Patient/<id>``, SQLite, encrypted) with each
   provider and the data-key cache off (``dek_cache_size=0``: every read unwraps and
   logs the unwrap), and, for scale, with the cache on and warm.

The baseline is the local keyring; the ratio is SoftHSM2's figure over it. SoftHSM2
gets a token store of this run's own (``scripts/softhsm-setup``), removed afterwards.

    .venv/bin/python -m bench.keys_unwrap            # about 3 minutes
    .venv/bin/python -m bench.keys_unwrap --quick    # a smoke run, under a minute
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, Table, now, ratio, write_results
from bench.reads import Side, alternate, start_side
from bench.serving import Deployment, deployment
from carevault.bootstrap import build_services, initialise
from carevault.keys.local import LocalKeyring
from carevault.keys.pkcs11 import Pkcs11KeyProvider
from carevault.keys.provider import KeyProvider, WrappedKey

NAME = "keys_unwrap"
MODULE = os.environ.get("CAREVAULT_BENCH_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
SO_PIN = "so-pin-of-the-bench"
USER_PIN = "user-pin-of-the-bench"
ROLE = "privacy_officer"
PROVIDERS = ("local", "pkcs11")


@dataclass(frozen=True)
class Options:
    keys: int
    rounds: int
    patients: int
    seconds: float
    read_rounds: int
    clients: tuple[int, ...]
    quick: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.keys_unwrap", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--keys", type=int, help="data keys unwrapped per round (1000)")
    parser.add_argument("--rounds", type=int, help="rounds of unwraps (5)")
    parser.add_argument("--patients", type=int, help="patients per server (2000)")
    parser.add_argument("--seconds", type=float, help="seconds per server per round (4)")
    parser.add_argument("--read-rounds", type=int, help="rounds per read cell (3)")
    parser.add_argument("--clients", help="concurrent clients, comma-separated (1,32)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Options(
        keys=args.keys or (100 if quick else 1000),
        rounds=args.rounds or (2 if quick else 5),
        patients=args.patients or (100 if quick else 2000),
        seconds=args.seconds or (1.0 if quick else 4.0),
        read_rounds=args.read_rounds or (1 if quick else 3),
        clients=tuple(int(c) for c in (args.clients or "1,32").split(",")),
        quick=quick,
    )


# --- SoftHSM2 ------------------------------------------------------------------------------


def softhsm_tokens(store: Path, labels: Sequence[str]) -> str:
    """Initialise a token per label in ``store``; return the SOFTHSM2_CONF to use."""
    conf = ""
    for label in labels:
        done = subprocess.run(
            [str(REPO_ROOT / "scripts" / "softhsm-setup"), str(store)],
            env={
                **os.environ,
                "CAREVAULT_PKCS11_TOKEN_LABEL": label,
                "CAREVAULT_PKCS11_SO_PIN": SO_PIN,
                "CAREVAULT_PKCS11_PIN": USER_PIN,
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/softhsm-setup failed:\n{done.stderr}")
        (line,) = [line for line in done.stdout.splitlines() if line.startswith("SOFTHSM2_CONF=")]
        conf = shlex.split(line)[0].removeprefix("SOFTHSM2_CONF=")
    return conf


# --- 1. unwrap per data key ------------------------------------------------------------------


def time_each(action: Callable[[int], object], count: int) -> float:
    """Microseconds per call of ``action(i)`` for i in range(count)."""
    began = time.perf_counter()
    for index in range(count):
        action(index)
    return (time.perf_counter() - began) / count * 1e6


def provider_costs(provider: KeyProvider, options: Options) -> dict[str, Any]:
    """Wrap ``keys`` data keys, then unwrap them in rounds; µs per key (median of rounds)."""
    key_ids = [f"bench-{i:06d}" for i in range(options.keys)]
    data_keys = [secrets.token_bytes(32) for _ in key_ids]
    wrapped: list[WrappedKey] = []
    wrap_us = time_each(
        lambda i: wrapped.append(provider.wrap(key_ids[i], data_keys[i])), options.keys
    )
    if provider.unwrap(key_ids[0], wrapped[0]) != data_keys[0]:
        raise RuntimeError(f"{provider.name}: an unwrapped key differs from the one wrapped")
    rounds = [
        time_each(lambda i: provider.unwrap(key_ids[i], wrapped[i]), options.keys)
        for _ in range(options.rounds)
    ]
    return {"wrap_us": wrap_us, "unwrap_us": statistics.median(rounds), "unwrap_rounds": rounds}


def logged_miss_us(target: Deployment, options: Options) -> float:
    """µs for ``KeyService.data_keys`` of one key with the cache off: row, unwrap, log."""
    settings = target.settings()
    initialise(settings)
    services = build_services(settings)
    try:
        keys = services.keys
        assert keys is not None
        key_ids = [f"bench-miss-{i:05d}" for i in range(min(options.keys, 300))]
        for key_id in key_ids:
            keys.create_data_key(key_id, "patient")

        def miss(index: int) -> object:
            key_id = key_ids[index % len(key_ids)]
            return keys.data_keys([key_id], principal="system:bench", purpose="bench")

        miss(0)
        return statistics.median(
            time_each(miss, len(key_ids)) for _ in range(max(1, options.rounds // 2))
        )
    finally:
        services.close()


# --- 2. reads through a server ---------------------------------------------------------------


def provider_fields(provider: str, label: str) -> dict[str, Any]:
    if provider == "local":
        return {"key_provider": "local"}
    return {
        "key_provider": "pkcs11",
        "pkcs11_module": MODULE,
        "pkcs11_token_label": label,
        "pkcs11_pin": USER_PIN,
    }


def server_reads(
    options: Options, workdir: Path, conf: str, labels: dict[str, str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cells = [("read", clients) for clients in options.clients]
    order = list(range(options.patients))
    random.Random(NAME).shuffle(order)
    for cache, size in (("off", 0), ("on", 4096)):
        print(f"data-key cache {cache}:", flush=True)
        with ExitStack() as stack:
            sides: list[Side] = []
            for provider in PROVIDERS:
                name = f"{provider}-cache-{cache}"
                target = deployment(
                    name,
                    workdir / name,
                    None,
                    environment={"SOFTHSM2_CONF": conf},
                    dek_cache_size=size,
                    dek_cache_seconds=3600,
                    **provider_fields(provider, labels.get(name, "")),
                )
                side = start_side(
                    stack,
                    provider,
                    target,
                    workdir,
                    role=ROLE,
                    # With the cache off there is nothing to fill: warm the code paths only.
                    warm_reads=200 if size == 0 else None,
                    patients=options.patients,
                )
                sides.append(side)
            alternate(
                sides, cells, rounds=options.read_rounds, seconds=options.seconds, order=order
            )
            rows += [
                {"provider": side.name, "cache": cache, **side.figures(cell)}
                for side in sides
                for cell in cells
            ]
    return rows


# --- report ------------------------------------------------------------------------------------


def summarise(
    costs: dict[str, dict[str, Any]], reads: list[dict[str, Any]], options: Options
) -> tuple[list[Table], dict[str, Any]]:
    unwrap = Table(
        "Data-key unwrap, per key (in-process)",
        ["provider", "wrap µs", "unwrap µs", "miss as a read pays it µs", "unwrap ratio vs local"],
    )
    for provider in PROVIDERS:
        cost = costs[provider]
        unwrap.add(
            provider,
            cost["wrap_us"],
            cost["unwrap_us"],
            cost["miss_us"],
            ratio(cost["unwrap_us"], costs["local"]["unwrap_us"]),
        )
    unwrap.notes += [
        f"unwrap µs: median of {options.rounds} rounds × {options.keys} keys;"
        " pkcs11 = SoftHSM2 on this machine",
        "miss as a read pays it = KeyService.data_keys with the cache off: the wrapped key's"
        " row, the unwrap, and its durable unwrap-ledger entry (SQLite, fsync)",
    ]
    throughput = Table(
        "Patient reads/s through the server (SQLite, encrypted), by key provider",
        [
            "provider",
            "data-key cache",
            "clients",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "server CPU ms/read",
            "unwraps/read",
            "ratio vs local",
        ],
    )
    by_cell = {(r["provider"], r["cache"], r["clients"]): r for r in reads}
    ratios: dict[str, float] = {}
    for cache in ("off", "on"):
        for clients in options.clients:
            local = by_cell[("local", cache, clients)]
            for provider in PROVIDERS:
                item = by_cell[(provider, cache, clients)]
                cell_ratio = ratio(item["per_second"], local["per_second"])
                if provider != "local":
                    ratios[f"cache-{cache}/{clients}"] = round(cell_ratio, 3)
                throughput.add(
                    provider,
                    cache,
                    clients,
                    float(item["per_second"]),
                    float(item["p50_ms"]),
                    float(item["p99_ms"]),
                    float(item["server_cpu_ms_per_request"]),
                    item["unwraps"] / item["requests"] if item["requests"] else 0.0,
                    cell_ratio,
                )
    throughput.notes += [
        f"{options.patients:,} patients per server; {options.read_rounds} round(s) ×"
        f" {options.seconds:g} s per server per cell, servers alternating",
        "cache off: dek_cache_size=0, every read unwraps and logs the unwrap;"
        " cache on: 4096 keys, warmed, no expiry during the run",
    ]
    errors = sum(r["errors"] for r in reads)
    if errors:
        throughput.notes.append(f"ERRORS: {errors} requests did not answer 200")
    summary = {
        "unwrap_us": {p: round(costs[p]["unwrap_us"], 1) for p in PROVIDERS},
        "miss_us": {p: round(costs[p]["miss_us"], 1) for p in PROVIDERS},
        "unwrap_ratio_pkcs11_vs_local": round(
            ratio(costs["pkcs11"]["unwrap_us"], costs["local"]["unwrap_us"]), 2
        ),
        "throughput_ratio_pkcs11_vs_local": ratios,
        "errors": errors,
    }
    return [unwrap, throughput], summary


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = now()
    with tempfile.TemporaryDirectory(prefix="carevault-bench-") as scratch:
        workdir = Path(scratch)
        names = ["micro", *(f"pkcs11-cache-{cache}" for cache in ("off", "on"))]
        labels = {name: f"cv-bench-{secrets.token_hex(4)}" for name in names}
        # Set before this process loads the PKCS#11 module, which reads it at C_Initialize.
        conf = softhsm_tokens(workdir / "softhsm", list(labels.values()))
        os.environ["SOFTHSM2_CONF"] = conf
        print("unwrap per data key:", flush=True)
        hsm = Pkcs11KeyProvider(MODULE, labels["micro"], USER_PIN)
        hsm.create_version()
        providers: dict[str, KeyProvider] = {
            "local": LocalKeyring.create(workdir / "micro-keyring" / "keyring.json"),
            "pkcs11": hsm,
        }
        costs: dict[str, dict[str, Any]] = {}
        for provider, made in providers.items():
            costs[provider] = provider_costs(made, options)
            miss_target = deployment(
                f"miss-{provider}",
                workdir / f"miss-{provider}",
                None,
                dek_cache_size=0,
                **provider_fields(provider, labels["micro"]),
            )
            costs[provider]["miss_us"] = logged_miss_us(miss_target, options)
            print(
                f"  {provider}: unwrap {costs[provider]['unwrap_us']:,.1f} µs,"
                f" miss {costs[provider]['miss_us']:,.0f} µs",
                flush=True,
            )
        reads = server_reads(options, workdir, conf, labels)
    tables, summary = summarise(costs, reads, options)
    print()
    print("\n\n".join(table.render() for table in tables))
    for path in write_results(
        NAME,
        quick=options.quick,
        settings={**vars(options), "pkcs11_module": MODULE, "backend": "sqlite"},
        results=[{"kind": "unwrap", "provider": p, **c} for p, c in costs.items()]
        + [{"kind": "reads", **r} for r in reads],
        tables=tables,
        summary=summary,
        started=started,
    ):
        print(f"wrote {path}")
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
