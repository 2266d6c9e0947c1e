"""Write bench/README.md, results.json and throughput.png from one run."""

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess

import pymongo

PLOT_OP = "get"


def first_line(argv):
    try:
        output = subprocess.run(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                check=False).stdout
    except OSError:
        return "not found"
    return output.strip().splitlines()[0] if output.strip() else "unknown"


def proc_field(path, name):
    with open(path) as source:
        for line in source:
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine(data):
    memory_kib = int(proc_field("/proc/meminfo", "MemTotal").split()[0])
    return [
        ("CPU", proc_field("/proc/cpuinfo", "model name")),
        ("cores", str(os.cpu_count())),
        ("memory", "%.1f GiB" % (memory_kib / 1024 / 1024)),
        ("kernel", platform.system() + " " + platform.release()),
        ("load average at the end (1, 5, 15 min)",
         ", ".join("%.2f" % x for x in data["load_average"])),
        ("compiler", first_line(["cc", "--version"])),
        ("libmongoc", first_line(["pkg-config", "--modversion",
                                  "libmongoc-1.0"])),
        ("libbson", first_line(["pkg-config", "--modversion", "libbson-1.0"])),
        ("libuv", first_line(["pkg-config", "--modversion", "libuv"])),
        ("server", data["server"]),
        ("Python", platform.python_version()),
        ("pymongo", pymongo.version),
        ("mongoKV", importlib.metadata.version("mongoKV")),
        ("valgrind", first_line(["valgrind", "--version"])),
        ("gnuplot", first_line(["gnuplot", "--version"])),
    ]


def size_name(large):
    return "16 KiB" if large else "small"


def find(rows, **match):
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def sync_one_thread_table(data):
    lines = ["| op | value | impl | ops/s | p50 µs | p99 µs | client CPU µs/op |",
             "|---|---|---|---:|---:|---:|---:|"]
    for large in [False, True]:
        for op in ["set", "get", "remove"]:
            for impl in ["mkv", "libmongoc"]:
                r = find(data["sync"], impl=impl, op=op, large=large,
                         threads=1)
                lines.append("| %s | %s | %s | %.0f | %.0f | %.0f | %.1f |" % (
                    op, size_name(large), impl, r["ops_per_s"], r["p50_us"],
                    r["p99_us"], r["cpu_us_per_op"]))
            r = find(data["python"], mode="python-sync", op=op, large=large)
            lines.append("| %s | %s | mongoKV sync | %.0f | %.0f | %.0f | %.1f |"
                         % (op, size_name(large), r["ops_per_s"], r["p50_us"],
                            r["p99_us"], r["cpu_us_per_op"]))
    return lines


def threads_table(data):
    threads = sorted({r["threads"] for r in data["sync"]})
    lines = ["| op | value | impl | " + " | ".join(
        "%d thr" % t for t in threads) + " |",
        "|---|---|---|" + "---:|" * len(threads)]
    for large in [False, True]:
        for op in ["set", "get", "remove"]:
            for impl in ["mkv", "libmongoc"]:
                cells = ["%.0f" % find(data["sync"], impl=impl, op=op,
                                       large=large, threads=t)["ops_per_s"]
                         for t in threads]
                lines.append("| %s | %s | %s | %s |" % (
                    op, size_name(large), impl, " | ".join(cells)))
    return lines


def async_table(data, field, fmt):
    in_flight = sorted({r["in_flight"] for r in data["async"]
                        if r["in_flight"] > 0})
    lines = ["| op | value | UV_THREADPOOL_SIZE | " + " | ".join(
        "%d in flight" % k for k in in_flight) + " |",
        "|---|---|---:|" + "---:|" * len(in_flight)]
    for pool in sorted({r["threadpool"] for r in data["async"]}):
        for large in [False, True]:
            for op in ["set", "get", "remove"]:
                cells = [fmt % find(data["async"], op=op, large=large,
                                    threadpool=pool, in_flight=k)[field]
                         for k in in_flight]
                lines.append("| %s | %s | %d | %s |" % (
                    op, size_name(large), pool, " | ".join(cells)))
    return lines


def python_table(data):
    lines = ["| op | value | mode | in flight | ops/s | client CPU µs/op |",
             "|---|---|---|---:|---:|---:|"]
    for r in data["python"]:
        lines.append("| %s | %s | %s | %d | %.0f | %.1f |" % (
            r["op"], size_name(r["large"]), r["mode"][len("python-"):],
            r["in_flight"], r["ops_per_s"], r["cpu_us_per_op"]))
    return lines


def callgrind_table(data):
    lines = ["| op | value | N | mkv instr/op | libmongoc instr/op | mkv/libmongoc |",
             "|---|---|---:|---:|---:|---:|"]
    for r in data["callgrind"]:
        lines.append("| %s | %s | %d | %.0f | %.0f | %.3f |" % (
            r["op"], size_name(r["large"]), r["n"], r["mkv"], r["libmongoc"],
            r["ratio"]))
    return lines


def all_table(data):
    lines = ["| keys | load (s, not timed) | mkv_all (s) | key bytes | "
             "peak RSS added (KiB) | RSS / key bytes |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in data["all"]:
        if r["skipped"]:
            lines.append("| %d | not run: %.0f s of the budget were left | | | | |"
                         % (r["keys"], r["left"]))
            continue
        lines.append("| %d | %.1f | %.2f | %d | %d | %.2f |" % (
            r["keys"], r["load_seconds"], r["seconds"], r["key_bytes"],
            r["rss_kib"], r["rss_kib"] * 1024 / r["key_bytes"]))
    return lines


def idle_loop(data, pool):
    """Return the run of the stall timer alone, with no operation."""
    return find(data["async"], in_flight=0, threadpool=pool)


def idle_loop_text(data):
    parts = []
    for pool in sorted({r["threadpool"] for r in data["async"]}):
        idle = idle_loop(data, pool)
        parts.append("p99 %.0f µs and max %.0f µs with UV_THREADPOOL_SIZE=%d"
                     % (idle["stall_p99_us"], idle["stall_max_us"], pool))
    runs = [r for r in data["async"] if r["in_flight"] in (1, 256)]
    single = [r["stall_p99_us"] for r in runs if r["in_flight"] == 1]
    many = [r["stall_p99_us"] for r in runs if r["in_flight"] == 256]
    return ["", "The same timer on an idle loop, with no operation at all, "
            "ran late by " + ", and ".join(parts) + ". That much of the "
            "stall is the machine's scheduling, not mkv's work on the loop "
            "thread. With one operation in flight, when the loop thread has "
            "almost nothing to do, the p99 stall averaged %.0f µs over the "
            "rows above, and with 256 in flight %.0f µs. So the loop thread "
            "waits for a core that the server and the workers keep busy "
            "more than it works." % (sum(single) / len(single),
                                     sum(many) / len(many))]


def goal_notes(data):
    """Return the numbers that explain the goals that depend on the server."""
    gets = [r for r in data["sync"] + data["async"]
            if r["op"] == "get" and not r["large"] and r["ops"] > 0]
    best = max(gets, key=lambda r: r["ops_per_s"])
    mkv = find(data["sync"], impl="mkv", op="get", large=False, threads=1)
    hand = find(data["sync"], impl="libmongoc", op="get", large=False,
                threads=1)
    return [
        "", "The fastest get with small values in any mkv or libmongoc run "
        "above made %.0f ops/s, against %.0f ops/s from one blocking thread: "
        "past that the server takes no more, whatever the client does. "
        "On one thread a get cost %.1f µs of client CPU through mkv and "
        "%.1f µs through libmongoc by hand, so the CPU goal is bounded by "
        "what libmongoc and the kernel spend on each call, not by mkv."
        % (best["ops_per_s"], mkv["ops_per_s"], mkv["cpu_us_per_op"],
           hand["cpu_us_per_op"])]


def goals_intro(data):
    """Return the sentence before the goals table, with the met count."""
    rows = [line for line in goals(data)[2:]]
    met = sum(1 for line in rows if line.endswith("| met |"))
    return [
        "These are the targets set for mkv when its benchmarks were planned: "
        "a client cost close to libmongoc's by hand, async throughput, CPU "
        "against the Python original, memory and time of `mkv_all`, and a "
        "loop thread that stays responsive. This run met %d of %d. Where a "
        "goal is missed, the notes below the table and the section above "
        "say whether the server or the machine is the limit." % (met,
                                                                 len(rows)),
        ""]


def verdict(ok):
    return "met" if ok else "**missed**"


def goals(data):
    lines = ["| goal | case | measured | verdict |", "|---|---|---|---|"]
    for r in data["callgrind"]:
        lines.append("| mkv/libmongoc instructions ≤ 1.05 | %s, %s | %.3f | %s |"
                     % (r["op"], size_name(r["large"]), r["ratio"],
                        verdict(r["ratio"] <= 1.05)))
    for large in [False, True]:
        for op in ["set", "get", "remove"]:
            a = find(data["async"], op=op, large=large, threadpool=16,
                     in_flight=64)["ops_per_s"]
            single = find(data["sync"], impl="mkv", op=op, large=large,
                       threads=1)["ops_per_s"]
            best = max(r["ops_per_s"] for r in data["sync"]
                       if r["impl"] == "libmongoc" and r["op"] == op
                       and r["large"] == large)
            case = "%s, %s, UV_THREADPOOL_SIZE=16" % (op, size_name(large))
            lines.append("| async 64 in flight ≥ 3× one sync thread | %s | "
                         "%.2f× (%.0f vs %.0f ops/s) | %s |"
                         % (case, a / single, a, single,
                            verdict(a >= 3 * single)))
            lines.append("| async 64 in flight ≥ 0.9× best libmongoc threads "
                         "| %s | %.2f× (%.0f vs %.0f ops/s) | %s |"
                         % (case, a / best, a, best, verdict(a >= 0.9 * best)))
    for large in [False, True]:
        for op in ["set", "get", "remove"]:
            mkv = find(data["sync"], impl="mkv", op=op, large=large,
                       threads=1)["cpu_us_per_op"]
            py = find(data["python"], mode="python-sync", op=op,
                      large=large)["cpu_us_per_op"]
            lines.append("| client CPU/op ≤ 1/10 of mongoKV | %s, %s, sync, "
                         "1 thread | %.1f vs %.1f µs (%.2f) | %s |"
                         % (op, size_name(large), mkv, py, mkv / py,
                            verdict(mkv <= py / 10)))
            mkv = find(data["async"], op=op, large=large, threadpool=16,
                       in_flight=64)["cpu_us_per_op"]
            py = find(data["python"], mode="python-asyncio", op=op,
                      large=large, in_flight=64)["cpu_us_per_op"]
            lines.append("| client CPU/op ≤ 1/10 of mongoKV | %s, %s, async, "
                         "64 in flight | %.1f vs %.1f µs (%.2f) | %s |"
                         % (op, size_name(large), mkv, py, mkv / py,
                            verdict(mkv <= py / 10)))
    measured = {r["keys"]: r for r in data["all"] if not r["skipped"]}
    if 1000000 in measured and 100000 in measured:
        ratio = measured[1000000]["seconds"] / measured[100000]["seconds"]
        lines.append("| mkv_all 1M within 12× of 100k | | %.2f× | %s |"
                     % (ratio, verdict(ratio <= 12)))
    else:
        lines.append("| mkv_all 1M within 12× of 100k | | 1M not run | "
                     "**missed** |")
    for keys, r in sorted(measured.items()):
        ratio = r["rss_kib"] * 1024 / r["key_bytes"]
        lines.append("| mkv_all peak RSS ≤ 2× key bytes | %d keys | %.2f× | %s |"
                     % (keys, ratio, verdict(ratio <= 2)))
    for r in data["async"]:
        if r["in_flight"] == 256:
            idle = idle_loop(data, r["threadpool"])
            lines.append("| loop stall p99 < 1 ms, 256 in flight | %s, %s, "
                         "UV_THREADPOOL_SIZE=%d | p99 %.0f µs, max %.0f µs "
                         "(idle loop: p99 %.0f µs) | %s |"
                         % (r["op"], size_name(r["large"]), r["threadpool"],
                            r["stall_p99_us"], r["stall_max_us"],
                            idle["stall_p99_us"],
                            verdict(r["stall_p99_us"] < 1000)))
    return lines


def server_limit(data):
    rows = {r["keys"]: r for r in data["scaling"]}
    parts = ["%d keys: %.0f ops/s" % (k, rows[k]["ops_per_s"])
             for k in sorted(rows)]
    single = find(data["sync"], impl="mkv", op="get", large=False, threads=1)
    server_cause = ""
    if data["server"].startswith("FerretDB"):
        server_cause = (" FerretDB 1.24.2 with SQLite reads every document of the "
               "collection for a lookup by `_id`.")
    return [
        "One thread's get, small values, with the collection at " +
        ", ".join(parts) + ". The client's work does not change with the "
        "collection's size, so any drop is the server's." + server_cause +
        " A get from "
        "one thread took %.0f µs of wall time (p50) and %.1f µs of client "
        "CPU, so the client waited on the server for the rest. With %d "
        "cores shared by the client and the server, more threads or more "
        "operations in flight add little once the server's core is busy."
        % (single["p50_us"], single["cpu_us_per_op"], os.cpu_count())]


def plot(data, out_dir):
    series = []

    def points(rows, x_field):
        return "\n".join("%d %.1f" % (r[x_field], r["ops_per_s"])
                         for r in sorted(rows, key=lambda r: r[x_field]))

    small = [r for r in data["async"] if r["op"] == PLOT_OP
             and not r["large"] and r["in_flight"] > 0]
    for pool in sorted({r["threadpool"] for r in small}):
        series.append(("mkv async, UV_THREADPOOL_SIZE=%d" % pool, points(
            [r for r in small if r["threadpool"] == pool], "in_flight")))
    for impl, title in [("mkv", "mkv sync threads"),
                        ("libmongoc", "libmongoc by hand, threads")]:
        series.append((title, points(
            [r for r in data["sync"] if r["impl"] == impl
             and r["op"] == PLOT_OP and not r["large"]], "threads")))
    series.append(("mongoKV asyncio", points(
        [r for r in data["python"] if r["mode"] == "python-asyncio"
         and r["op"] == PLOT_OP and not r["large"]], "in_flight")))
    series.append(("mongoKV sync", points(
        [r for r in data["python"] if r["mode"] == "python-sync"
         and r["op"] == PLOT_OP and not r["large"]], "in_flight")))

    script = ["set terminal png size 900,600", "set termoption noenhanced",
              "set output '%s'" % os.path.join(out_dir, "throughput.png"),
              "set title 'get, small values: ops/s against concurrency'",
              "set xlabel 'threads, or operations in flight'",
              "set ylabel 'operations per second'",
              "set logscale x 2", "set xrange [0.8:320]", "set yrange [0:*]",
              "set key below", "set grid"]
    for index, (title, rows) in enumerate(series):
        script.append("$s%d << EOD\n%s\nEOD" % (index, rows))
    script.append("plot " + ", ".join(
        "$s%d using 1:2 with linespoints title '%s'" % (i, title)
        for i, (title, _) in enumerate(series)))
    subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True,
                   check=True)


def write(data, out_dir):
    with open(os.path.join(out_dir, "results.json"), "w") as out:
        json.dump(data, out, indent=1)
    plot(data, out_dir)
    page = ["# Benchmarks", "",
            "This page is written by `scripts/dev bench`, with every number "
            "from its last run on %s, which took %.0f s of wall time. "
            "`bench/results.json` has the raw results and "
            "`bench/throughput.png` the plot." % (
                datetime.date.today().isoformat(), data["wall_seconds"]),
            "", "![ops/s against concurrency](throughput.png)", "",
            "## Machine and versions", "", "| | |", "|---|---|"]
    page += ["| %s | %s |" % item for item in machine(data)]
    page += [
        "", "## What runs", "",
        "Each run is one process that loads its keys first, outside the "
        "clock, with libmongoc's `insert_many`, then runs one operation for "
        "%.1f s or until its operation count is reached. Keys are "
        "`key-000000` and up. A small value is the 13-byte string "
        "`\"a small value\"`, and a 16 KiB value is the document "
        "`{\"data\": <16,384 x>}`. set overwrites and get reads %d loaded "
        "keys, stepping through them by 7,919 so that even a short run "
        "reaches the whole collection, and remove deletes each of %d "
        "loaded keys once, in order. "
        "\"libmongoc\" is the same calls written by hand in "
        "`bench/impl_libmongoc.c`: the filter, update, options and "
        "projection that `src/ops.c` sends, with a client popped from a "
        "pool for each call, and the same 30 s socketTimeoutMS and "
        "waitQueueTimeoutMS that `mkv_open()` sets. \"mongoKV\" is the Python package, version "
        "above, run by `bench/mongokv_bench.py` on the same keys and values. "
        "Client CPU is the user plus system time of the client process "
        "during the timed part, divided by the operations. Loop stall is "
        "how late a 1 ms `uv_timer` on the loop ran, over the run."
        % (data["settings"]["run_seconds"], data["settings"]["working_keys"],
           data["settings"]["remove_keys"]), "",
        "## The server is the limit", ""] + server_limit(data) + [
        "", "## Goals", ""] + goals_intro(data) + goals(data) + goal_notes(data) + [
        "", "## One thread, blocking calls", ""] + sync_one_thread_table(data) + [
        "", "## Threads sharing one handle or pool (ops/s)", ""] + threads_table(data) + [
        "", "## Async on one loop (ops/s)", ""] + async_table(data, "ops_per_s", "%.0f") + [
        "", "## Loop-thread stall, p99 / max (µs)", ""]
    page += async_stall_table(data) + idle_loop_text(data)
    page += ["", "## mongoKV (Python)", ""] + python_table(data)
    page += ["", "## Instructions per operation (callgrind)", "",
             "`valgrind --tool=callgrind` counts the instructions of N and "
             "of 11N operations on one key; instructions per operation are "
             "(I(11N) - I(N)) / 10N, so the set-up cancels out. These runs "
             "add heartbeatFrequencyMS=600000 to the URI of both programs, "
             "so that no server check by libmongoc's monitor thread lands "
             "in one run and not the other.", ""]
    page += callgrind_table(data)
    page += ["", "## mkv_all", "",
             "Keys are 24-character ObjectId hex strings, like mkv's auto "
             "keys. Peak RSS added is the peak RSS of a process that opens a "
             "handle, pings and calls `mkv_all`, minus that of the same "
             "process without the call.", ""] + all_table(data)
    fixes = os.path.join(out_dir, "fixes.md")
    if os.path.exists(fixes):
        with open(fixes) as source:
            page += ["", source.read().rstrip()]
    page += ["", "## Every command of this run", "",
             "From the repository root, with `MKV_URI` set; "
             "`scripts/dev bench` runs them all.", "", "```sh"]
    page += data["commands"]
    page += ["```", ""]
    with open(os.path.join(out_dir, "README.md"), "w") as out:
        out.write("\n".join(page))


def async_stall_table(data):
    in_flight = sorted({r["in_flight"] for r in data["async"]
                        if r["in_flight"] > 0})
    lines = ["| op | value | UV_THREADPOOL_SIZE | " + " | ".join(
        "%d in flight" % k for k in in_flight) + " |",
        "|---|---|---:|" + "---:|" * len(in_flight)]
    for pool in sorted({r["threadpool"] for r in data["async"]}):
        for large in [False, True]:
            for op in ["set", "get", "remove"]:
                cells = []
                for k in in_flight:
                    r = find(data["async"], op=op, large=large,
                             threadpool=pool, in_flight=k)
                    cells.append("%.0f / %.0f" % (r["stall_p99_us"],
                                                  r["stall_max_us"]))
                lines.append("| %s | %s | %d | %s |" % (
                    op, size_name(large), pool, " | ".join(cells)))
    return lines
