"""Measure the Python mongoKV package on the same keys and values as mkv-bench.

One run per process: load the keys with pymongo, run one operation through
mongoKV's Mkv class (its blocking calls, or its coroutines on asyncio with
a fixed number in flight), and print one JSON line like mkv-bench does.
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

import pymongo
from mongokv import Mkv

DB_NAME = "mkv_bench"
COLLECTION = "kv"
LARGE_TEXT_LEN = 16384
LOAD_BATCH = 10000
KEY_STRIDE = 7919  # as BENCH_KEY_STRIDE in bench/bench.h


def bench_key(index):
    """Return the key of an index, as bench_key() in bench/common.c does."""
    return "key-%06d" % index


def bench_value(large):
    """Return the value that bench_value() in bench/common.c builds."""
    if large:
        return {"data": "x" * LARGE_TEXT_LEN}
    return "a small value"


def load_keys(uri, count, value):
    """Drop the collection and insert `count` keys, as bench_prepare() does."""
    client = pymongo.MongoClient(uri)
    collection = client[DB_NAME][COLLECTION]
    collection.drop()
    for first in range(0, count, LOAD_BATCH):
        last = min(first + LOAD_BATCH, count)
        collection.insert_many(
            [{"_id": bench_key(i), "value": value} for i in range(first, last)])
    client.close()


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def key_of(args, index):
    if args.op == "remove":
        return bench_key(index)
    return bench_key(index * KEY_STRIDE % args.keys)


def run_op(kv, args, key, value):
    """Run one operation: a coroutine inside asyncio, a result outside."""
    if args.op == "set":
        return kv.set(key, value)
    if args.op == "get":
        return kv.get(key)
    return kv.remove(key)


def run_sync(kv, args, value):
    latencies = []
    deadline = time.monotonic() + args.seconds
    index = 0
    while index < args.ops and time.monotonic() < deadline:
        started = time.perf_counter()
        result = run_op(kv, args, key_of(args, index), value)
        latencies.append(time.perf_counter() - started)
        if args.op == "remove" and result is not True:
            sys.exit("mongokv_bench: remove %r found no key" % key_of(args, index))
        index += 1
    return index, latencies


async def run_asyncio(uri, args, value):
    """Create Mkv inside the running loop, which its AsyncMongoClient needs."""
    kv = Mkv(uri, DB_NAME, COLLECTION)
    await kv.get(bench_key(0))  # connect before the clock starts
    deadline = time.monotonic() + args.seconds
    state = {"next": 0}

    async def worker():
        while state["next"] < args.ops and time.monotonic() < deadline:
            index = state["next"]
            state["next"] += 1
            await run_op(kv, args, key_of(args, index), value)

    cpu_started = cpu_seconds()
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.in_flight)))
    seconds = time.monotonic() - started
    cpu = cpu_seconds() - cpu_started
    await kv.close()
    return state["next"], [], seconds, cpu


def measure_sync(uri, args, value):
    kv = Mkv(uri, DB_NAME, COLLECTION)
    kv.get(bench_key(0))  # connect before the clock starts
    cpu_started = cpu_seconds()
    started = time.monotonic()
    ops, latencies = run_sync(kv, args, value)
    seconds = time.monotonic() - started
    cpu = cpu_seconds() - cpu_started
    kv.close()
    return ops, latencies, seconds, cpu


def percentile_us(latencies, p):
    """Return the nearest-rank percentile, as bench_percentile() does."""
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    rank = min(max(int(p / 100.0 * len(ordered) + 0.999999), 1), len(ordered))
    return ordered[rank - 1] * 1e6


def measure(args, uri):
    value = bench_value(args.large)
    load_keys(uri, args.keys, value)
    if args.mode == "sync":
        ops, latencies, seconds, cpu = measure_sync(uri, args, value)
    else:
        ops, latencies, seconds, cpu = asyncio.run(
            run_asyncio(uri, args, value))
    return {
        "mode": "python-" + args.mode, "impl": "mongoKV", "op": args.op,
        "large": args.large, "in_flight": args.in_flight, "keys": args.keys,
        "ops": ops, "seconds": round(seconds, 6),
        "ops_per_s": round(ops / seconds, 1),
        "p50_us": round(percentile_us(latencies, 50), 1),
        "p99_us": round(percentile_us(latencies, 99), 1),
        "cpu_us_per_op": round(cpu / ops * 1e6, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["sync", "asyncio"])
    parser.add_argument("--op", choices=["set", "get", "remove"], default="get")
    parser.add_argument("--large", action="store_true",
                        help="16 KiB values in place of small ones")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="asyncio: operations in flight")
    parser.add_argument("--ops", type=int, default=1000,
                        help="stop after this many operations")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="or after this many seconds")
    parser.add_argument("--keys", type=int, default=200,
                        help="keys loaded before the run")
    args = parser.parse_args()
    uri = os.environ.get("MKV_URI")
    if not uri:
        sys.exit("mongokv_bench: MKV_URI is not set; set it to the mongodb:// "
                 "URI of the server to measure")
    if args.op == "remove" and args.ops > args.keys:
        sys.exit("mongokv_bench: remove needs --ops no larger than --keys")
    print(json.dumps(measure(args, uri)))


if __name__ == "__main__":
    main()
