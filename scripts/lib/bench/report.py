#!/usr/bin/env python3
"""scripts/bench's report: reads drive.py's raw JSON files and hey's summaries from RAW, writes
OUT/results.json (every figure, every step) and OUT/results.md (one row per workload: result,
baseline measured in the same run, ratio, target, what limited it), and prints the table.

In quick mode it checks only that each workload ran and produced numbers (its first, lowest
step answered without errors, drains completed, pgbench ran), never timings; it exits 1
otherwise."""

import argparse
import json
import os
import re
import sys

MB = 1e6 / 1048576  # 1 MB in MiB


def load(raw, name):
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return None
    if name.endswith(".json"):
        with open(path) as f:
            return json.load(f)
    with open(path) as f:
        return f.read()


def hey_summary(text, ok):
    """hey's text summary: rate, p99 (ms), responses with the expected status, responses."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"\s99%+ in ([\d.]+) secs", text) or re.search(r"Slowest:\s+([\d.]+) secs", text)
    codes = {c: int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", text)}
    return {"per_sec": rate, "p99_ms": float(m.group(1)) * 1000, "ok": codes.get(ok, 0),
            "responses": sum(codes.values()), "errors": len(re.findall(r"Error distribution", text))}


def cpu_text(usage):
    """'server 0.92, postgres 0.61, wrk 0.20 (machine 1.9 of 2 cores)'"""
    if not usage:
        return ""
    cores = sorted(usage["cpu_cores"].items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{k} {v:.2f}" for k, v in cores if v >= 0.01)
    return f"{parts} (machine {usage['machine_busy_cores']:.2f} of {usage['cores']} cores)"


def top_process(usage, exclude=("other",)):
    cores = {k: v for k, v in usage["cpu_cores"].items() if k not in exclude}
    return max(cores, key=cores.get) if cores else "?"


def why_over(step, bound):
    reasons = []
    if step["error_count"]:
        kinds = {k: v for k, v in step["errors"].items() if v}
        reasons.append(f"errors {kinds}")
    if step["p99_ms"] > bound:
        reasons.append(f"p99 {step['p99_ms']:.1f} ms > {bound:g} ms")
    if step["rate"] < 0.9 * step["target_rate"]:
        reasons.append(f"reached {step['rate']:.0f} of {step['target_rate']:.0f}/s")
    return "; ".join(reasons)


def stepped_limit(run):
    """What stopped the stepping, and where the CPU went at that rate."""
    over = run.get("first_over")
    if not over:
        last = run["steps"][-1] if run["steps"] else None
        if not last:
            return "did not run"
        return f"steps ran out at {last['target_rate']:.0f}/s with the bound still held; CPU {cpu_text(last)}"
    machine = over["machine_busy_cores"] / over["cores"]
    busy = "CPU saturated" if machine > 0.9 else f"CPU not saturated ({machine:.0%})"
    return (f"at {over['target_rate']:.0f}/s: {why_over(over, run['p99_bound_ms'])}; {busy}, "
            f"most in {top_process(over)}: {cpu_text(over)}")


def rate_text(run):
    best = run.get("best")
    if best:
        return f"{best['rate']:,.0f}/s at p99 {best['p99_ms']:.1f} ms"
    first = run["steps"][0] if run["steps"] else None
    if first:
        return (f"no step held the bound (lowest: {first['rate']:,.0f}/s, p99 {first['p99_ms']:.1f} ms, "
                f"{first['error_count']} errors)")
    return "did not run"


def best_rate(run):
    return run["best"]["rate"] if run and run.get("best") else 0.0


def capped(drain):
    return "" if drain["complete"] else f"; stopped there, {drain['total'] - drain['done']:,} left"


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("raw")
    p.add_argument("out")
    p.add_argument("--quick", type=int, default=0)
    p.add_argument("--profile", default="release")
    p.add_argument("--secs", type=int, default=0)
    p.add_argument("--only", default="")
    a = p.parse_args()
    raw = a.raw
    rows, details, problems = [], {}, []

    def row(id_, workload, result, baseline, r, target, met, limited):
        rows.append({"id": id_, "workload": workload, "result": result, "baseline": baseline,
                     "ratio": r, "target": target, "met": met, "limited_by": limited})

    def check_http(name, run):
        if run is None:
            problems.append(f"{name}: no result")
            return
        if not run["steps"] or run["steps"][0]["requests"] == 0:
            problems.append(f"{name}: no request answered")
        elif run["steps"][0]["error_count"]:
            problems.append(f"{name}: errors at its lowest rate: {run['steps'][0]['errors']}")

    def check_pgbench(name, run):
        if run is None or run["transactions"] == 0 or run["failed"]:
            problems.append(f"{name}: pgbench did not run cleanly")

    seed = load(raw, "seed.json")
    details["seed"] = seed

    w1, w1b = load(raw, "w1.json"), load(raw, "w1-baseline.json")
    if w1 or w1b:
        check_http("W1", w1)
        check_http("W1 baseline", w1b)
        r = ratio(best_rate(w1), best_rate(w1b))
        limited = f"W1 {stepped_limit(w1)}. Baseline {stepped_limit(w1b)}"
        row("W1", "GET one file's metadata (/api/v1/tenants/{id}/files/{file}, API key): request id, "
            "tracing, metrics, auth and the read in one tenant transaction, plan rate limit (Redis)",
            rate_text(w1), f"bare poem route, same JSON: {rate_text(w1b)}", r,
            "≥ 0.50 at p99 ≤ 10 ms", r is not None and r >= 0.5, limited)
        details["W1"], details["W1_baseline"] = w1, w1b

    w2, w2p = load(raw, "w2.json"), load(raw, "w2-pgbench.json")
    if w2:
        check_http("W2", w2)
        check_pgbench("W2 pgbench", w2p)
        r = ratio(best_rate(w2), w2p["tps"] if w2p else 0)
        row("W2", "GET a page of 20 files after a cursor (/files?limit=20&after=…, API key, RLS); "
            "no join: the API has no paginated list with one",
            rate_text(w2),
            f"pgbench, the same statements (-M prepared, BEGIN and the setting pipelined, {w2p['clients']} connections = the "
            f"server's pool): {w2p['tps']:,.0f}/s, p99 {w2p['p99_ms']:.1f} ms" if w2p else "—",
            r, "≥ 0.60 at p99 ≤ 25 ms", r is not None and r >= 0.6,
            f"{stepped_limit(w2)}. pgbench: CPU {cpu_text(w2p)}" if w2p else stepped_limit(w2))
        details["W2"], details["W2_pgbench"] = w2, w2p

    w3, w3p = load(raw, "w3.json"), load(raw, "w3-pgbench.json")
    if w3:
        check_http("W3", w3)
        check_pgbench("W3 pgbench", w3p)
        r = ratio(best_rate(w3), w3p["tps"] if w3p else 0)
        row("W3", "POST an invitation (API key): the row, its email job and an audit event in one "
            "transaction, tenants in turn",
            rate_text(w3),
            f"pgbench, the same 23 statements (+1 picking the tenant), {w3p['clients']} connections: "
            f"{w3p['tps']:,.0f}/s, p99 {w3p['p99_ms']:.1f} ms" if w3p else "—",
            r, "≥ 0.60 (p99 ≤ 50 ms: our bound)", r is not None and r >= 0.6,
            f"{stepped_limit(w3)}. pgbench: CPU {cpu_text(w3p)}" if w3p else stepped_limit(w3))
        details["W3"], details["W3_pgbench"] = w3, w3p

    hash_time = load(raw, "w4-hash-time.json")
    if hash_time:
        alone_txt, during_txt = load(raw, "w4-logins-alone.txt"), load(raw, "w4-logins-during.txt")
        api_alone, api_during = load(raw, "w4-api-alone.json"), load(raw, "w4-api-during.json")
        alone = hey_summary(alone_txt, "303")
        during = hey_summary(during_txt, "303") if during_txt else None
        ceiling = hash_time["ceiling_logins_per_sec"]
        check_http("W4 API alone", api_alone)
        check_http("W4 API during logins", api_during)
        if alone["ok"] == 0:
            problems.append("W4: no login answered 303")
        s_alone, s_during = api_alone["steps"][0], api_during["steps"][0]
        login_ratio = ratio(alone["per_sec"], ceiling)
        p99_ratio = ratio(s_during["p99_ms"], s_alone["p99_ms"])
        met = (login_ratio is not None and login_ratio >= 0.85 and p99_ratio is not None
               and p99_ratio <= 2 and alone["ok"] == alone["responses"])
        row("W4", f"logins (argon2id, OWASP parameters), 8 at a time; then W1 at half its rate "
            f"({s_alone['target_rate']:.0f}/s) alone and during logins",
            f"{alone['per_sec']:.1f} logins/s ({alone['ok']}/{alone['responses']} answered 303), p99 "
            f"{alone['p99_ms']:.0f} ms; W1 p99 {s_during['p99_ms']:.2f} ms during logins "
            f"({s_during['rate']:.0f}/s, {s_during['error_count']} errors; logins meanwhile "
            f"{during['per_sec']:.1f}/s)" if during else "",
            f"ceiling {hash_time['cores']} cores / {hash_time['hash_ms']:.1f} ms = {ceiling:.1f} logins/s; "
            f"W1 p99 alone {s_alone['p99_ms']:.2f} ms",
            login_ratio, "logins ≥ 0.85 of the ceiling; W1 p99 ≤ 2× alone", met,
            f"logins/ceiling {fmt_ratio(login_ratio)}, W1 p99 during/alone {fmt_ratio(p99_ratio)}. "
            f"During logins CPU {cpu_text(s_during)}")
        details["W4"] = {"hash_time": hash_time, "logins_alone": alone, "logins_during": during,
                         "api_alone": api_alone, "api_during": api_during,
                         "login_ratio": login_ratio, "p99_ratio": p99_ratio}

    w5, w5p, idle = load(raw, "w5.json"), load(raw, "w5-pgbench.json"), load(raw, "w5-idle.json")
    if w5:
        if w5["done"] == 0 or (a.quick and not w5["complete"]):
            problems.append(f"W5: only {w5['done']} of {w5['total']} jobs drained")
        check_pgbench("W5 pgbench", w5p)
        base = w5p.get("jobs_per_sec") if w5p else None
        r = ratio(w5["per_sec"], base)
        idle_q = idle["statements_per_sec"] if idle else None
        met = w5["per_sec"] >= 10000 and idle_q is not None and idle_q <= 2
        def stmts(run, n):
            busy = [q for q in (run or {}).get("statements", []) if q["query"] not in ("BEGIN", "COMMIT")]
            return [f"{q['calls']:,}× {q['query'][:48]}… ({q['exec_ms'] / max(q['calls'], 1):.2f} ms each)"
                    for q in busy[:n]]
        stm = "; ".join(stmts(w5, 3))
        idle_stm = "; ".join(stmts(idle, 2))
        row("W5", f"{w5['total']:,} no-op jobs (billing.seats: a no-op without Stripe keys, the "
            f"cheapest handler) inserted in one statement, drained by tenantkit-worker "
            f"(concurrency {w5p['clients'] if w5p else '?'}); then idle",
            f"{w5['per_sec']:,.0f} jobs/s ({w5['done']:,} in {w5['secs']:.1f} s{capped(w5)}); idle: "
            f"{idle_q} statements/s, {idle['commits_per_sec'] if idle else '?'} commits/s",
            f"pgbench, apalis's claim (get_jobs, {w5p.get('defines', {}).get('batch', '?')}) + batch ack, {w5p['clients']} connections: "
            f"{base:,.0f} jobs/s" if base else "—",
            r, "≥ 10,000 jobs/s; idle polling ≤ 2 queries/s", met,
            f"drain CPU {cpu_text(w5)}; statements meanwhile (pg_stat_statements): {stm}. Idle CPU "
            f"{cpu_text(idle) if idle else ''}; idle statements in {idle['secs'] if idle else '?'} s: {idle_stm}. "
            f"pgbench CPU {cpu_text(w5p) if w5p else ''}")
        details["W5"], details["W5_pgbench"], details["W5_idle"] = w5, w5p, idle

    w6, w6s = load(raw, "w6.json"), load(raw, "w6-smtp-source.json")
    if w6:
        if w6["done"] == 0 or (a.quick and not w6["complete"]):
            problems.append(f"W6: only {w6['done']} of {w6['total']} emails sent")
        if w6["failed"]:
            problems.append(f"W6: {w6['failed']} email jobs failed")
        base = w6s["per_sec"] if w6s else None
        r = ratio(w6["per_sec"], base)
        row("W6", f"{w6['total']:,} invitation emails (templated, signed link, ledger row) through "
            f"the queue to smtp-sink",
            f"{w6['per_sec']:,.0f} emails/s ({w6['done']:,} in {w6['secs']:.1f} s{capped(w6)})",
            f"smtp-source, 4 connections kept open, 4 KiB messages: {base:,.0f}/s" if base else "—",
            r, "≥ 0.50 of smtp-source and ≥ 2,000 emails/s",
            r is not None and r >= 0.5 and w6["per_sec"] >= 2000,
            f"CPU {cpu_text(w6)}; smtp-source CPU {cpu_text(w6s) if w6s else ''}")
        details["W6"], details["W6_smtp_source"] = w6, w6s

    start, mem = load(raw, "w7-startup.json"), load(raw, "w7-memory.json")
    if start:
        srv_idle = seed["server_rss_idle_mib"] if seed else None
        srv_load = (w2 or {}).get("best", {}) or {}
        srv_load = srv_load.get("rss_peak_mib", {}).get("server")
        wrk_idle = idle["rss_peak_mib"].get("worker") if idle else None
        wrk_load = w5["rss_peak_mib"].get("worker") if w5 else None
        met = (srv_idle is not None and wrk_idle is not None and srv_idle <= 50 * MB
               and wrk_idle <= 50 * MB and start["median_ms"] <= 200)
        f = lambda v: "?" if v is None else f"{v:.1f}"
        w4rss = load(raw, "w4-rss.json")
        logins_rss = (f"; server {w4rss['server_rss_before_logins_kib'] / 1024:.1f} MiB before W4's logins, "
                      f"{w4rss['server_rss_after_logins_kib'] / 1024:.1f} MiB after") if w4rss else ""
        row("W7", "resident memory (VmRSS) idle and under load; server start-up (spawn to the "
            "first 200 on /healthz)",
            f"server {f(srv_idle)} MiB idle, {f(srv_load)} MiB under W2; worker {f(wrk_idle)} MiB "
            f"idle, {f(wrk_load)} MiB under W5; start-up median {start['median_ms']:.0f} ms "
            f"(runs {start['runs_ms']})",
            "—", None, "≤ 50 MB idle each; start-up ≤ 200 ms", met,
            f"freshly started server {f(start.get('rss_after_start_mib'))} MiB; now: server "
            f"{f((mem or {}).get('server_rss_now_mib'))} MiB, worker {f((mem or {}).get('worker_rss_now_mib'))} MiB"
            f"{logins_rss}")
        details["W7"] = {"startup": start, "memory_now": mem, "server_idle_mib": srv_idle,
                         "server_under_w2_mib": srv_load, "worker_idle_mib": wrk_idle,
                         "worker_under_w5_mib": wrk_load}

    s1 = {n: load(raw, f"s1-{n}.json") for n in ["api-upload", "api-download", "cp", "cat", "s3-put",
                                                  "s3-get", "api-s3-upload", "api-s3-download"]}
    if s1["api-upload"]:
        v = lambda n: s1[n]["mib_per_sec"] if s1[n] else None
        f = lambda n: "?" if v(n) is None else f"{v(n):,.0f}"
        up, down = ratio(v("api-upload"), v("cp")), ratio(v("api-download"), v("cat"))
        s3up, s3down = ratio(v("api-s3-upload"), v("s3-put")), ratio(v("api-s3-download"), v("s3-get"))
        size = round(s1["api-upload"]["mib_per_sec"] * s1["api-upload"]["secs"])
        row("S1", f"one {size} MiB file up (raw body, streamed) and down through the API: "
            "filesystem backend, then S3 backend on moto",
            f"filesystem: up {f('api-upload')} MiB/s, down {f('api-download')} MiB/s; S3: up "
            f"{f('api-s3-upload')} MiB/s, down {f('api-s3-download')} MiB/s",
            f"cp {f('cp')} MiB/s, cat {f('cat')} MiB/s (same disk); moto direct: PUT {f('s3-put')}, "
            f"GET {f('s3-get')} MiB/s",
            up, "— (issue 6 sets none)", None,
            f"ratios up {fmt_ratio(up)}, down {fmt_ratio(down)}, S3 up {fmt_ratio(s3up)}, S3 down "
            f"{fmt_ratio(s3down)}. Upload CPU {cpu_text(s1['api-upload'])}; download CPU "
            f"{cpu_text(s1['api-download'])}; S3 upload CPU {cpu_text(s1['api-s3-upload']) if s1['api-s3-upload'] else ''}")
        details["S1"] = {k: v for k, v in s1.items()}
        details["S1"]["ratios"] = {"upload": up, "download": down, "s3_upload": s3up, "s3_download": s3down}

    s2, s2p = load(raw, "s2.json"), load(raw, "s2-pgbench.json")
    if s2:
        check_http("S2", s2)
        check_pgbench("S2 pgbench", s2p)
        r = ratio(best_rate(s2), s2p["tps"] if s2p else 0)
        row("S2", f"concurrent listing of a folder of 100 small files (/files?folder=/small&limit=100), "
            f"{s2['connections']} connections",
            rate_text(s2),
            f"pgbench, the same statements, {s2p['clients']} connections: {s2p['tps']:,.0f}/s, p99 "
            f"{s2p['p99_ms']:.1f} ms" if s2p else "—",
            r, "p99 reported (issue 6 sets no bound; ours 25 ms)", None,
            f"{stepped_limit(s2)}. pgbench: CPU {cpu_text(s2p)}" if s2p else stepped_limit(s2))
        details["S2"], details["S2_pgbench"] = s2, s2p

    a3 = {n: load(raw, f"a3-{n}.json") for n in ["first", "name", "email"]}
    if a3["first"]:
        for n, run in a3.items():
            check_http(f"A3 {n}", run)
        s = {n: run["steps"][0] for n, run in a3.items() if run}
        worst = max(s["name"]["p99_ms"], s["email"]["p99_ms"])
        ok = s["name"]["requests"] - s["name"]["error_count"] + s["email"]["requests"] - s["email"]["error_count"]
        total = s["name"]["requests"] + s["email"]["requests"]
        r = ratio(worst, s["first"]["p99_ms"])
        row("A3", "p99 of the admin's tenant list at 48 views/s: name / email search",
            f"{s['name']['p99_ms']:.2f} / {s['email']['p99_ms']:.2f} ms ({ok}/{total} OK)",
            f"first page, no search: {s['first']['p99_ms']:.2f} ms", r, "small", None,
            f"email search CPU {cpu_text(s['email'])}")
        details["A3"] = a3

    wanted = [w for w in a.only.split(",") if w] if a.only else None
    if wanted:
        for w in wanted:
            if w not in [r["id"] for r in rows]:
                problems.append(f"{w}: no result")

    lines = ["| id | workload | result | baseline (same run) | ratio | target | met | limited by |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        cells = [r["id"], r["workload"], r["result"], r["baseline"], fmt_ratio(r["ratio"]), r["target"],
                 met, r["limited_by"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    mode = "quick (smoke run: timings not judged)" if a.quick else "full"
    head = (f"Tenantkit benchmarks, {mode}, {a.profile} build, {os.cpu_count()} cores, "
            f"{a.secs} s in all. Seed: {seed['tenants']} tenants × {seed['rows_per_tenant']:,} files, "
            f"invitations and audit events, {seed['users']:,} users ({seed['secs']} s).\n\n" if seed else "")
    phases = [(l.split()[0], float(l.split()[1])) for l in (load(raw, "phases.txt") or "").splitlines() if l.strip()]
    md = head + "\n".join(lines) + "\n"
    if phases:
        md += "\nSeconds per part: " + ", ".join(f"{n} {t:.0f}" for n, t in phases) + "\n"
    if problems:
        md += "\nProblems:\n" + "".join(f"- {p}\n" for p in problems)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"mode": "quick" if a.quick else "full", "profile": a.profile, "secs": a.secs,
                   "cores": os.cpu_count(), "rows": rows, "problems": problems,
                   "phases_secs": dict(phases), "details": details},
                  f, indent=2)
    print(md)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
