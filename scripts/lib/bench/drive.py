#!/usr/bin/env python3
"""scripts/bench's load driver: steps a request rate until a bound breaks, runs pgbench, times
job drains, and samples what each process spent meanwhile (CPU from /proc/PID/stat, resident
memory from /proc/PID/status). Public tools do the loading: wrk (paced by wrk-pace.lua) and
pgbench; this only decides rates and reads their answers. Every subcommand writes one JSON file.

    drive.py http    --out F --url U [--header H]... [--lua L] --p99-ms B ...
    drive.py pgbench --out F --db URL --script S --clients N (--secs T | --transactions N)
    drive.py drain   --out F --db URL --queue Q --total N --timeout S
    drive.py startup --out F --port P --runs N -- COMMAND...

Processes to watch are named with --proc NAME=PID (repeatable); `postgres=PID` (the postmaster)
counts every PostgreSQL backend, living or already gone.
"""

import argparse
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
HERE = os.path.dirname(os.path.abspath(__file__))


# --- what processes spend ------------------------------------------------------------------

def _stat(pid):
    """(ppid, utime+stime, cutime+cstime) in ticks, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is the state (field 3); utime is field 14, so fields[11].
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _children_of(parent):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(entry)
            if st and st[0] == parent:
                kids.append(int(entry))
    return kids


def cpu_ticks(name, pid):
    """Ticks spent so far. For PostgreSQL, the postmaster, its living backends and (through
    the postmaster's cutime) every backend it has already reaped."""
    st = _stat(pid)
    if st is None:
        return 0
    if name == "postgres":
        total = st[1] + st[2]
        for kid in _children_of(pid):
            k = _stat(kid)
            if k:
                total += k[1]
        return total
    return st[1]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine_busy_ticks():
    """Ticks every core of the machine spent busy (anything but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


class Watch:
    """CPU of each named process between start() and stop(), the whole machine's, and the
    peak resident memory of each sampled twice a second."""

    def __init__(self, procs):
        self.procs = procs  # {name: pid}
        self.peak = {}
        self._stop = threading.Event()

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {n: cpu_ticks(n, p) for n, p in self.procs.items()}
        self.m0 = machine_busy_ticks()
        self.peak = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while True:
            for name, pid in self.procs.items():
                if name == "postgres":
                    continue
                r = rss_mib(pid)
                if r is not None:
                    self.peak[name] = max(self.peak.get(name, 0), r)
            if self._stop.wait(0.5):
                return

    def stop(self, extra_cpu=None):
        """{"cpu_cores": {name: cores}, "rss_peak_mib": {...}}; extra_cpu adds measured
        seconds of processes not in the table (the load tool)."""
        self._stop.set()
        self._thread.join()
        wall = max(time.monotonic() - self.t0, 1e-6)
        cores = {}
        for name, pid in self.procs.items():
            cores[name] = round((cpu_ticks(name, pid) - self.c0[name]) / TICK / wall, 3)
        for name, secs in (extra_cpu or {}).items():
            cores[name] = round(secs / wall, 3)
        machine = (machine_busy_ticks() - self.m0) / TICK / wall
        # What the machine spent beyond the processes named: other work on a shared machine
        # (and the benchmark's own scripts).
        cores["other"] = round(max(0.0, machine - sum(cores.values())), 3)
        return {"cpu_cores": cores, "machine_busy_cores": round(machine, 3), "cores": CORES,
                "rss_peak_mib": {k: round(v, 1) for k, v in self.peak.items()},
                "wall_secs": round(wall, 2)}


def run_measured(cmd, timeout, env=None):
    """Runs a load tool; returns (stdout, stderr, returncode, its CPU seconds)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n(killed after {timeout} s)"
    # The child is reaped: its times are in this process's children's usage.
    return out, err, proc.returncode


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def parse_procs(items):
    procs = {}
    for item in items or []:
        name, _, pid = item.partition("=")
        if pid.strip():
            procs[name] = int(pid)
    return procs


def dump(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


# --- http: step the rate ---------------------------------------------------------------------

def wrk_step(args, rate, secs):
    """One paced wrk run at `rate` requests/s for `secs`; wrk-pace.lua prints a JSON summary."""
    script = args.lua or os.path.join(HERE, "wrk-pace.lua")
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{secs}s",
           "--timeout", f"{args.timeout}s", "-s", script]
    for h in args.header or []:
        cmd += ["-H", h]
    cmd += [args.url]
    env = dict(os.environ, BENCH_RATE=str(rate), BENCH_THREADS=str(args.threads),
               BENCH_METHOD=args.method, BENCH_BODY_FILE=args.body_file or "",
               BENCH_OK=args.ok_status)
    for kv in args.lua_env or []:
        k, _, v = kv.partition("=")
        env[k] = v
    before = children_cpu()
    out, err, code = run_measured(cmd, secs + args.timeout + 30, env)
    tool_cpu = children_cpu() - before
    m = re.search(r"^BENCH_JSON (.*)$", out, re.M)
    if code != 0 or not m:
        raise SystemExit(f"wrk failed ({code}): {err.strip()[-800:]}\n{out[-800:]}")
    s = json.loads(m.group(1))
    dur = s["duration_us"] / 1e6
    errors = s["errors"]
    return {
        "target_rate": rate,
        "rate": round(s["requests"] / dur, 1),
        "requests": s["requests"],
        "errors": errors,
        "error_count": sum(errors.values()),
        "p50_ms": round(s["p50_us"] / 1000, 3),
        "p99_ms": round(s["p99_us"] / 1000, 3),
        "max_ms": round(s["max_us"] / 1000, 3),
    }, tool_cpu


def http(args):
    procs = parse_procs(args.proc)
    watch = Watch(procs)
    steps = []

    def attempt(rate):
        if args.between:
            subprocess.run(args.between, shell=True, check=True)
        watch.start()
        step, tool_cpu = wrk_step(args, rate, args.step_secs)
        step.update(watch.stop({"wrk": tool_cpu}))
        step["ok"] = (step["error_count"] == 0 and step["p99_ms"] <= args.p99_ms
                      and step["rate"] >= 0.9 * rate)
        steps.append(step)
        print(f"  {args.name}: target {rate:.0f}/s -> {step['rate']:.0f}/s, p99 {step['p99_ms']:.2f} ms, "
              f"errors {step['error_count']}, cpu {step['cpu_cores']}"
              f" {'ok' if step['ok'] else 'over'}", file=sys.stderr)
        return step

    if args.fixed_rate:
        attempt(args.fixed_rate)
    else:
        rate, passed, failed = args.start_rate, None, None
        for _ in range(args.max_steps):
            step = attempt(rate)
            if step["ok"]:
                passed = step
                rate = rate * args.factor
                if rate > args.max_rate:
                    break
            else:
                failed = step
                break
        # Narrow the gap between the last rate that held and the first that did not.
        for _ in range(args.refine):
            if not failed:
                break
            low = passed["target_rate"] if passed else 0
            high = failed["target_rate"]
            if high - low < max(0.05 * high, 20):
                break
            step = attempt((low + high) / 2)
            if step["ok"]:
                passed = step
            else:
                failed = step
    ok = [s for s in steps if s["ok"]]
    best = max(ok, key=lambda s: s["rate"]) if ok else None
    over = [s for s in steps if not s["ok"]]
    dump(args.out, {"name": args.name, "p99_bound_ms": args.p99_ms, "connections": args.connections,
                    "best": best, "first_over": min(over, key=lambda s: s["target_rate"]) if over else None,
                    "steps": steps})


# --- pgbench ---------------------------------------------------------------------------------

def pgbench(args):
    procs = parse_procs(args.proc)
    watch = Watch(procs)
    logdir = args.log_dir
    os.makedirs(logdir, exist_ok=True)
    for f in os.listdir(logdir):
        if f.startswith("pgbench_log"):
            os.unlink(os.path.join(logdir, f))
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(args.clients), "-j", str(min(args.clients, args.threads)),
           "-f", args.script, "-l", "--log-prefix", os.path.join(logdir, "pgbench_log")]
    for d in args.define or []:
        cmd += ["-D", d]
    cmd += ["-T", str(args.secs)] if args.secs else ["-t", str(args.transactions)]
    cmd += [args.db]
    watch.start()
    before = children_cpu()
    out, err, code = run_measured(cmd, (args.secs or 600) + 60)
    tool_cpu = children_cpu() - before
    usage = watch.stop({"pgbench": tool_cpu})
    if code != 0:
        raise SystemExit(f"pgbench failed ({code}): {err.strip()[-1500:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    lat = []
    for f in os.listdir(logdir):
        if f.startswith("pgbench_log"):
            with open(os.path.join(logdir, f)) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3:
                        lat.append(int(parts[2]))
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(math.ceil(p / 100 * len(lat))) - 1)] / 1000 if lat else None
    result = {"name": args.name, "clients": args.clients, "tps": tps,
              "transactions": len(lat), "failed": int(failed.group(1)) if failed else 0,
              "p50_ms": pct(50), "p99_ms": pct(99),
              "defines": dict(d.split("=", 1) for d in args.define or [])}
    result.update(usage)
    if args.jobs_queue:
        q = args.jobs_queue.replace("'", "''")
        # From the first claim to the last acknowledgement: empty claims after the queue ran
        # dry do not count.
        done, secs = psql(args.owner_db, f"select count(*), extract(epoch from max(done_at) - min(lock_at)) "
                                         f"from apalis.jobs where job_type = '{q}' and status = 'Done'").split("|")
        done, secs = int(done), float(secs or 0)
        result.update({"jobs_done": done, "jobs_secs": round(secs, 2) if secs else None,
                       "jobs_per_sec": round(done / secs, 1) if secs else None})
    print(f"  {args.name}: {tps:.0f} tps over {args.clients} connections, p99 {result['p99_ms']} ms, "
          f"cpu {usage['cpu_cores']}", file=sys.stderr)
    dump(args.out, result)


# --- job drains ------------------------------------------------------------------------------

def psql(db, sql):
    return subprocess.run(["psql", db, "-qAtX", "-c", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def drain(args):
    """Waits until `total` jobs of `queue` are done (or failed for good), sampling progress."""
    procs = parse_procs(args.proc)
    watch = Watch(procs)
    q = args.queue.replace("'", "''")
    count_sql = (f"select count(*) filter (where status = 'Done'), "
                 f"count(*) filter (where status in ('Failed', 'Killed')), count(*) "
                 f"from apalis.jobs where job_type = '{q}'")
    start = time.monotonic()
    watch.start()
    if args.start_cmd:
        subprocess.run(args.start_cmd, shell=True, check=True)
    t_first = None
    done = failed = 0
    samples = []
    while time.monotonic() - start < args.timeout:
        done, failed, _ = map(int, psql(args.db, count_sql).split("|"))
        now = time.monotonic() - start
        samples.append((round(now, 2), done))
        if done and t_first is None:
            t_first = now
        if done + failed >= args.total:
            break
        time.sleep(args.poll)
    elapsed = time.monotonic() - start
    usage = watch.stop()
    statements = top_statements(args.db) if args.statements else None
    result = {"name": args.name, "queue": args.queue, "total": args.total, "done": done,
              "failed": failed, "secs": round(elapsed, 2),
              "per_sec": round(done / elapsed, 1) if elapsed else None,
              "first_done_after_secs": round(t_first, 2) if t_first is not None else None,
              "complete": done + failed >= args.total, "progress": samples[-50:]}
    if statements is not None:
        result["statements"] = statements
    result.update(usage)
    print(f"  {args.name}: {done}/{args.total} done ({failed} failed) in {elapsed:.1f} s "
          f"= {result['per_sec']}/s, cpu {usage['cpu_cores']}", file=sys.stderr)
    dump(args.out, result)


def top_statements(db, limit=8):
    rows = psql(db, "select calls, rows, round(total_exec_time::numeric, 1), "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 160) from pg_stat_statements "
                    "where query not like '%pg_stat_statements%' and query not like '%apalis.jobs where job_type = %' "
                    f"order by calls desc limit {limit}")
    out = []
    for line in rows.splitlines():
        calls, nrows, ms, query = line.split("|", 3)
        out.append({"calls": int(calls), "rows": int(nrows), "exec_ms": float(ms), "query": query})
    return out


def idle(args):
    """Queries and commits per second while nothing is queued (the worker's polling)."""
    procs = parse_procs(args.proc)
    watch = Watch(procs)
    commits_sql = "select xact_commit from pg_stat_database where datname = current_database()"
    psql(args.db, "select pg_stat_statements_reset()")
    c0 = int(psql(args.db, commits_sql))
    watch.start()
    time.sleep(args.secs)
    usage = watch.stop()
    c1 = int(psql(args.db, commits_sql))
    statements = top_statements(args.db)
    calls = int(psql(args.db, "select coalesce(sum(calls), 0) from pg_stat_statements where query not in "
                              "('BEGIN', 'COMMIT') and query not like '%pg_stat%'"))
    # Our own two reads of pg_stat_database commit too.
    result = {"name": args.name, "secs": args.secs,
              "statements_per_sec": round(calls / args.secs, 1),
              "commits_per_sec": round(max(0, c1 - c0 - 2) / args.secs, 1),
              "statements": statements}
    result.update(usage)
    print(f"  {args.name}: {result['statements_per_sec']} statements/s, {result['commits_per_sec']} commits/s "
          f"idle, cpu {usage['cpu_cores']}", file=sys.stderr)
    dump(args.out, result)


def timed(args):
    """One command, timed, with the CPU it and the watched processes spent."""
    procs = parse_procs(args.proc)
    watch = Watch(procs)
    watch.start()
    before = children_cpu()
    t0 = time.monotonic()
    code = subprocess.run(args.command).returncode
    secs = time.monotonic() - t0
    tool_cpu = children_cpu() - before
    usage = watch.stop({"command": tool_cpu})
    if code != 0:
        raise SystemExit(f"{args.name}: {' '.join(args.command)} exited with {code}")
    result = {"name": args.name, "secs": round(secs, 3)}
    if args.bytes:
        result["mib_per_sec"] = round(args.bytes / 1048576 / secs, 1)
    if args.count:
        result["per_sec"] = round(args.count / secs, 1)
    result.update(usage)
    print(f"  {args.name}: {secs:.2f} s {result.get('mib_per_sec', result.get('per_sec', ''))}, "
          f"cpu {usage['cpu_cores']}", file=sys.stderr)
    dump(args.out, result)


# --- start-up time ---------------------------------------------------------------------------

def healthz_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def startup(args):
    """Spawn to the first 200 on /healthz, `runs` times; each process is stopped after."""
    times = []
    for _ in range(args.runs):
        log = open(args.log, "a") if args.log else subprocess.DEVNULL
        t0 = time.monotonic()
        proc = subprocess.Popen(args.command, stdout=log, stderr=log)
        while not healthz_ok(args.port):
            if proc.poll() is not None:
                raise SystemExit(f"{args.command[0]} exited with {proc.returncode} before answering")
            if time.monotonic() - t0 > 60:
                proc.kill()
                raise SystemExit(f"{args.command[0]} did not answer /healthz within 60 s")
            time.sleep(0.002)
        times.append((time.monotonic() - t0) * 1000)
        time.sleep(args.settle)
        rss = rss_mib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    times.sort()
    result = {"name": args.name, "runs_ms": [round(t, 1) for t in times],
              "median_ms": round(times[len(times) // 2], 1), "rss_after_start_mib": rss}
    print(f"  {args.name}: start-up {result['runs_ms']} ms", file=sys.stderr)
    dump(args.out, result)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    h = sub.add_parser("http")
    h.add_argument("--name", required=True)
    h.add_argument("--out", required=True)
    h.add_argument("--url", required=True)
    h.add_argument("--header", action="append")
    h.add_argument("--method", default="GET")
    h.add_argument("--body-file")
    h.add_argument("--ok-status", default="", help="with a custom --lua: the status that counts")
    h.add_argument("--lua")
    h.add_argument("--lua-env", action="append", help="NAME=VALUE for the Lua script")
    h.add_argument("--connections", type=int, default=32)
    h.add_argument("--threads", type=int, default=2)
    h.add_argument("--timeout", type=int, default=2)
    h.add_argument("--p99-ms", type=float, required=True)
    h.add_argument("--start-rate", type=float, default=500)
    h.add_argument("--max-rate", type=float, default=200000)
    h.add_argument("--factor", type=float, default=1.5)
    h.add_argument("--max-steps", type=int, default=12)
    h.add_argument("--refine", type=int, default=2)
    h.add_argument("--step-secs", type=int, default=6)
    h.add_argument("--fixed-rate", type=float)
    h.add_argument("--between", help="a shell command run before each step")
    h.add_argument("--proc", action="append")

    g = sub.add_parser("pgbench")
    g.add_argument("--name", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--db", required=True)
    g.add_argument("--script", required=True)
    g.add_argument("--clients", type=int, required=True)
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--secs", type=int)
    g.add_argument("--transactions", type=int)
    g.add_argument("--define", action="append", help="NAME=VALUE for the script")
    g.add_argument("--log-dir", required=True)
    g.add_argument("--jobs-queue", help="count this queue's done jobs: jobs/s")
    g.add_argument("--owner-db")
    g.add_argument("--proc", action="append")

    d = sub.add_parser("drain")
    d.add_argument("--name", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--db", required=True)
    d.add_argument("--queue", required=True)
    d.add_argument("--total", type=int, required=True)
    d.add_argument("--timeout", type=float, default=600)
    d.add_argument("--poll", type=float, default=0.2)
    d.add_argument("--start-cmd", help="a shell command that starts the drain (timed)")
    d.add_argument("--statements", action="store_true",
                   help="keep pg_stat_statements' busiest statements (reset it before)")
    d.add_argument("--proc", action="append")

    s = sub.add_parser("startup")
    s.add_argument("--name", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--runs", type=int, default=3)
    s.add_argument("--settle", type=float, default=1.0)
    s.add_argument("--log")
    s.add_argument("command", nargs="+")

    i = sub.add_parser("idle")
    i.add_argument("--name", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--db", required=True)
    i.add_argument("--secs", type=float, default=10)
    i.add_argument("--proc", action="append")

    t = sub.add_parser("timed")
    t.add_argument("--name", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--bytes", type=int)
    t.add_argument("--count", type=int)
    t.add_argument("--proc", action="append")
    t.add_argument("command", nargs="+")

    args = p.parse_args()
    {"http": http, "pgbench": pgbench, "drain": drain, "startup": startup, "idle": idle,
     "timed": timed}[args.cmd](args)


if __name__ == "__main__":
    main()
