"""Run every libmkv benchmark and write bench/README.md and the plot.

scripts/dev bench runs this with the Python of a virtual environment that
contains mongoKV and pymongo, after it has built mkv-bench and started a
server. Every number on the page comes from the run that writes it.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

OPS = ["set", "get", "remove"]
SIZES = [False, True]  # small values, then 16 KiB documents
THREADS = [1, 2, 4, 8, 16]
IN_FLIGHT = [1, 4, 16, 64, 256]
THREADPOOLS = [4, 16]
PYTHON_IN_FLIGHT = [1, 16, 64]
ALL_KEYS = [10000, 100000, 1000000]

# Per-operation runs: keys in the collection, and the bounds of one run.
# FerretDB 1.24.2 with SQLite reads every document of the collection for a
# lookup by _id, so the collection stays small (see the page's text).
WORKING_KEYS = 200
REMOVE_KEYS = 400
RUN_SECONDS = 0.8
RUN_MAX_OPS = 20000
SCALING_KEYS = [20, 200, 2000]

# callgrind runs N and 11N operations. The difference over 10N is the cost
# of one operation without the set-up.
CALLGRIND_N = {False: 100, True: 20}

# The whole run should end within 10 minutes, so mkv_all over 1,000,000
# keys runs only when this much time is left for it.
BUDGET_SECONDS = 600
ALL_MILLION_RESERVE_SECONDS = 200


class Runner:
    def __init__(self, bench, python_bench, out_dir):
        self.bench = bench
        self.python_bench = python_bench
        self.out_dir = out_dir
        self.started = time.monotonic()
        self.commands = []

    def elapsed(self):
        return time.monotonic() - self.started

    def run(self, argv, env_extra=None):
        """Run one benchmark process and return the JSON object it prints."""
        env = dict(os.environ)
        env.update(env_extra or {})
        env_text = " ".join("%s=%s" % item for item in (env_extra or {}).items())
        command = (env_text + " " if env_text else "") + " ".join(
            shlex.quote(os.path.relpath(a) if os.path.isabs(a) else a)
            for a in argv)
        self.commands.append(command)
        print("bench: %s" % command, file=sys.stderr, flush=True)
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                                text=True, timeout=300, check=False)
        if result.returncode != 0:
            sys.exit("bench: failed with exit status %d: %s"
                     % (result.returncode, command))
        return json.loads(result.stdout.strip().splitlines()[-1])

    def mkv_bench(self, *args, env_extra=None):
        return self.run([self.bench] + [str(a) for a in args], env_extra)


def op_args(op, large, keys=None):
    keys = keys or (REMOVE_KEYS if op == "remove" else WORKING_KEYS)
    ops = REMOVE_KEYS if op == "remove" else RUN_MAX_OPS
    args = ["--op", op, "--keys", keys, "--ops", ops, "--seconds", RUN_SECONDS]
    return args + (["--large"] if large else [])


def run_sync(runner):
    results = []
    for large in SIZES:
        for op in OPS:
            for impl in ["mkv", "libmongoc"]:
                for threads in THREADS:
                    results.append(runner.mkv_bench(
                        "sync", "--impl", impl, "--threads", threads,
                        *op_args(op, large)))
    return results


def run_async(runner):
    """Run the async workloads, and the stall timer alone on an idle loop."""
    results = []
    for pool in THREADPOOLS:
        results.append(runner.mkv_bench(
            "async", "--in-flight", 0, "--seconds", RUN_SECONDS,
            env_extra={"UV_THREADPOOL_SIZE": str(pool)}))
        for large in SIZES:
            for op in OPS:
                for in_flight in IN_FLIGHT:
                    results.append(runner.mkv_bench(
                        "async", "--in-flight", in_flight, *op_args(op, large),
                        env_extra={"UV_THREADPOOL_SIZE": str(pool)}))
    return results


def run_python(runner):
    results = []
    for large in SIZES:
        for op in OPS:
            results.append(runner.run(
                [sys.executable, runner.python_bench, "sync"]
                + [str(a) for a in op_args(op, large)]))
            for in_flight in PYTHON_IN_FLIGHT:
                results.append(runner.run(
                    [sys.executable, runner.python_bench, "asyncio",
                     "--in-flight", str(in_flight)]
                    + [str(a) for a in op_args(op, large)]))
    return results


def run_scaling(runner):
    return [runner.mkv_bench("sync", "--op", "get", "--keys", keys, "--ops",
                             RUN_MAX_OPS, "--seconds", RUN_SECONDS)
            for keys in SCALING_KEYS]


def callgrind_env():
    """Return the environment of a callgrind run, heartbeats turned down.

    libmongoc's pool checks the server every heartbeatFrequencyMS (10 s by
    default) on a thread of its own, and callgrind counts that thread too,
    so a run that lasts longer would count more checks. Both programs get
    the same URI.
    """
    env = dict(os.environ)
    uri = env["MKV_URI"]
    env["MKV_URI"] = uri + ("&" if "?" in uri else "?") + \
        "heartbeatFrequencyMS=600000"
    return env


def callgrind_total(runner, impl, op, large, ops):
    """Count the instructions of one mkv-bench count run with callgrind."""
    out = os.path.join(runner.out_dir, "callgrind.%s.%s.%d" % (impl, op, ops))
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
            runner.bench, "count", "--impl", impl, "--op", op, "--ops",
            str(ops)] + (["--large"] if large else [])
    runner.commands.append("MKV_URI=$MKV_URI?heartbeatFrequencyMS=600000 " +
                           " ".join(os.path.relpath(a) if a.startswith("/")
                                    else a for a in argv))
    print("bench: callgrind %s %s %d" % (impl, op, ops), file=sys.stderr,
          flush=True)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=300, env=callgrind_env())
    with open(out) as profile:
        for line in profile:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
    os.remove(out)
    return total


def run_callgrind(runner):
    results = []
    for large in SIZES:
        for op in ["get", "set"]:
            row = {"op": op, "large": large, "n": CALLGRIND_N[large]}
            for impl in ["mkv", "libmongoc"]:
                n = CALLGRIND_N[large]
                low = callgrind_total(runner, impl, op, large, n)
                high = callgrind_total(runner, impl, op, large, 11 * n)
                row[impl] = (high - low) / (10 * n)
            row["ratio"] = row["mkv"] / row["libmongoc"]
            results.append(row)
    return results


def run_all(runner):
    results = []
    runner.mkv_bench("reset")
    for keys in ALL_KEYS:
        left = BUDGET_SECONDS - runner.elapsed()
        if keys >= 1000000 and left < ALL_MILLION_RESERVE_SECONDS:
            results.append({"keys": keys, "skipped": True, "left": left})
            continue
        started = time.monotonic()
        runner.mkv_bench("all-load", "--keys", keys)
        load_seconds = time.monotonic() - started
        with_call = runner.mkv_bench("all", "--call-all")
        without = runner.mkv_bench("all")
        if with_call["keys"] != keys:
            sys.exit("bench: mkv_all listed %d keys, expected %d"
                     % (with_call["keys"], keys))
        results.append({
            "keys": keys, "skipped": False, "load_seconds": load_seconds,
            "seconds": with_call["seconds"],
            "key_bytes": with_call["key_bytes"],
            "rss_kib": with_call["max_rss_kib"] - without["max_rss_kib"],
        })
    runner.mkv_bench("reset")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", required=True, help="the mkv-bench program")
    parser.add_argument("--server", required=True,
                        help="the server's name and version, for the page")
    parser.add_argument("--out", required=True, help="the bench/ folder")
    args = parser.parse_args()
    if not os.environ.get("MKV_URI"):
        sys.exit("bench: MKV_URI is not set")

    runner = Runner(os.path.abspath(args.bench),
                    os.path.join(args.out, "mongokv_bench.py"), args.out)
    data = {"server": args.server,
            "settings": {"run_seconds": RUN_SECONDS,
                         "working_keys": WORKING_KEYS,
                         "remove_keys": REMOVE_KEYS}}
    data["sync"] = run_sync(runner)
    data["async"] = run_async(runner)
    data["python"] = run_python(runner)
    data["scaling"] = run_scaling(runner)
    data["callgrind"] = run_callgrind(runner)
    data["all"] = run_all(runner)
    data["wall_seconds"] = runner.elapsed()
    data["load_average"] = os.getloadavg()
    data["commands"] = runner.commands

    import report  # bench/report.py, beside this file
    report.write(data, args.out)
    print("bench: done in %.0f s; wrote %s" % (
        data["wall_seconds"], os.path.join(args.out, "README.md")),
        file=sys.stderr)


if __name__ == "__main__":
    main()
