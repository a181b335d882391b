"""Renders bench/results.json (from rotation-bench) as bench/README.md and bench/scale.png.

usage: report.py RESULTS_JSON ZIP_DIR OUT_DIR
"""
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results_path, zip_dir, out = sys.argv[1:4]
r = json.load(open(results_path))

# The strict minimum of Secrets Manager calls per rotation, by rotator: four DescribeSecret (the
# gate of each step), createSecret's read of the pending version (expected missing), of
# AWSCURRENT and its PutSecretValue, one read of the pending value in setSecret and in testSecret,
# and finishSecret's one UpdateSecretVersionStage (move AWSCURRENT; Secrets Manager takes
# AWSPENDING off). A single user DB rotation also needs AWSCURRENT in setSecret to log in; the IAM
# rotator reads AWSPREVIOUS in createSecret and finishSecret to know which key to spare or retire.
MINIMUM = {
    "random-password": 10,
    "db-password (PostgreSQL)": 11,
    "db-password (MariaDB)": 11,
    "iam-access-key": 12,
}
# Lambda's price per GB-second (us-east-1), and the one this report's costs use: the templates
# deploy arm64 (infra/).
PRICE_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
ARCH = "arm64"


def f(x):
    return f"{x:.1f}"


def spread(s, digits=1):
    """A summary as `median (min-max)`."""
    return f"{s['median_ms']:.{digits}f} ({s['min_ms']:.{digits}f}-{s['max_ms']:.{digits}f})"


def steps(w):
    return ", ".join(f(w["steps"][k]["median_ms"]) for k in ("setSecret", "testSecret", "finishSecret"))


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "shared", "rotators"]).returncode
dirty = " with uncommitted changes" if changed else ""
commit = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
).stdout.strip()
lines = [
    "# Benchmarks",
    "",
    "Measured by `bench/run` (cold starts, warm rotations, API calls, memory, package size, scale) on",
    "the local stack: moto server as Secrets Manager/IAM/STS, throwaway PostgreSQL and MariaDB with TLS. Release",
    "binaries (`opt-level = \"s\"`, LTO, one codegen unit, stripped) run through the project's Lambda",
    "Runtime API server, as Lambda runs them. Rerun with `bench/run [COLD_RUNS] [WARM_ROTATIONS] [CPU_RUNS]`.",
    "",
    f"- date: {datetime.date.today().isoformat()}",
    f"- machine: {os.cpu_count()} cores, {cpu()}, {platform.system()} {platform.release()}",
    f"- {rustc}",
    f"- code measured: `shared/` and `rotators/` at commit {commit}{dirty}",
    f"- cold starts: {r['cold_runs']} fresh processes per rotator; warm: {r['warm_rotations']} rotations in one process",
    f"- load averages (1, 5, 15 min) before the run: {r.get('load_before', '?')}; after: {r.get('load_after', '?')}",
    "",
    "Times include the local moto server's answers (a single-threaded Python process), which",
    "dominate every step that calls Secrets Manager; they are a ceiling for the function's own cost.",
    "The machine's two cores were shared with other work during the run (builds and tests of other",
    "changes; the load averages above), so absolute times are noisier than on an idle machine;",
    "ratios measured side by side (ours against the templates, the C clients) suffer less.",
    "",
    "## Cold start",
    "",
    "Exec to the first `/invocation/next` (init), and exec to the answer of a first invocation that",
    "calls Secrets Manager once (`DescribeSecret`).",
    "",
    "| rotator | init median (min-max) ms | first response median (min-max) ms |",
    "|---|---|---|",
]
for name, c in r["cold_start"].items():
    i, fr = c["init"], c["first_response"]
    lines.append(
        f"| {name} | {spread(i)} | {spread(fr)} |"
    )
lines += [
    "",
    "## Warm rotation, memory and API calls",
    "",
    "One long-lived process rotating a new secret each time through the local rotate-secret driver;",
    "the dual-password and Redis rows rotate one secret again and again (after one unmeasured",
    "rotation), so every measured rotation also retires the previous password in createSecret, as",
    "with `RETIRE_PREVIOUS=next-rotation` (the default; `RETIRE_PREVIOUS_MIN_AGE_SECONDS=0`).",
    "The dual-password secret names a master secret (`masterarn`); the Redis secret, an",
    "administrator's secret; the Redis user is a self-managed ACL user reached over TLS.",
    "API calls are counted by a proxy between the function and moto (GitHub calls by the stand-in), for one whole rotation.",
    "",
    "| rotator | rotation median ms | createSecret | setSecret | testSecret | finishSecret | peak RSS MB | Secrets Manager calls (strict minimum) |",
    "|---|---|---|---|---|---|---|---|",
]
for name, w in r["warm"].items():
    s = w["steps"]
    rss = w["peak_rss_kib"] / 1024 if w["peak_rss_kib"] else float("nan")
    lines.append(
        f"| {name} | {f(w['rotation']['median_ms'])} | {f(s['createSecret']['median_ms'])} "
        f"| {f(s['setSecret']['median_ms'])} | {f(s['testSecret']['median_ms'])} "
        f"| {f(s['finishSecret']['median_ms'])} | {rss:.1f} | {w['secrets_manager_calls']} ({MINIMUM.get(name, '?')}) |"
    )
lines += ["", "Calls per rotation, by operation:", ""]
ops = sorted({op for w in r["warm"].values() for op in w["api_calls"]})
names = list(r["warm"])
lines.append("| operation | " + " | ".join(names) + " |")
lines.append("|---|" + "---|" * len(names))
for op in ops:
    lines.append(f"| {op} | " + " | ".join(str(r["warm"][n]["api_calls"].get(op, 0)) for n in names) + " |")
lines += [
    "",
    "github-token's testSecret includes the GitHub stand-in's propagation delay: it answers 401 for a",
    "token for its first second (as GitHub may for a new token), which the rotator retries every 500 ms.",
    "",
    "`?`: no minimum derived. finishSecret makes one `UpdateSecretVersionStage` (it moves",
    "`AWSCURRENT`; Secrets Manager takes `AWSPENDING` off once the rotation succeeded).",
    "The dual-password and Redis rotators also read their master or administrator secret (one",
    "`GetSecretValue` each time they log in as it).",
    "",
    "Above the minimum, by design: finishSecret tests the pending value once more before it moves",
    "`AWSCURRENT` (one `GetSecretValue`), so a manual or out-of-order finishSecret can never promote",
    "a placeholder or a broken credential; the IAM rotator's testSecret and finishSecret re-read",
    "`AWSCURRENT` and `AWSPREVIOUS` because each step is a separate invocation.",
]
if r.get("aws_template"):
    lines += [
        "",
        "## DB rotation against AWS's Python templates",
        "",
        "AWS's single-user templates (aws-samples/aws-secrets-manager-rotation-lambdas, the copy at",
        "`BENCH_AWS_TEMPLATES`) run under the same Runtime API server through `bench/lambda_runtime.py`,",
        "warm, against the same moto and database server with TLS verify-full and the same CA (the one",
        "change to the template: the CA file's path). Medians of the warm rotations; ratio = ours / template.",
        "",
        "| database | template ms (set, test, finish) | ours ms (set, test, finish) | ours / template |",
        "|---|---|---|---|",
    ]
    for name, t in r["aws_template"].items():
        o = r["warm"][name]
        ratio = o["rotation"]["median_ms"] / t["rotation"]["median_ms"]
        lines.append(
            f"| {name.split('(')[1].rstrip(')')} | {f(t['rotation']['median_ms'])} ({steps(t)}) "
            f"| {f(o['rotation']['median_ms'])} ({steps(o)}) | {ratio:.2f} |"
        )
if r.get("logins"):
    lines += [
        "",
        "## One DB login against the C client libraries",
        "",
        "Connect (TLS verify-full with the stack's CA, or plain), `SELECT 1`, close, in a warm process:",
        "ours is `db_password::db::connect` in `rotation-bench`; the reference is libpq or MariaDB",
        "Connector/C in `bench/reference/logins.c`; same server, user and password (SCRAM-SHA-256 on",
        "PostgreSQL, mysql_native_password on MariaDB). Rounds of 10 alternate between the two.",
        "",
        "| database, transport | ours median (min-max) ms | reference median (min-max) ms | ours / reference |",
        "|---|---|---|---|",
    ]
    for name, l in r["logins"].items():
        o, t = l["ours"], l["reference"]
        lines.append(
            f"| {name} | {spread(o, 2)} | {spread(t, 2)} | {l['ratio']:.2f} |"
        )
cs = r.get("cpu_shares")
if cs:
    sizes = cs["sizes"]

    def mb(size):
        return size["memory_mb"] or 1769

    def head(size):
        return f"{size['memory_mb']} MB ({size['cpu_share'] * 100:.1f}%)" if size["memory_mb"] else "1769 MB (no limit)"

    def billed_ms(m):
        """One rotation as Lambda bills it: a cold init (billed since August 2025) and four steps,
        each rounded up to the millisecond."""
        steps = sum(math.ceil(v["median_ms"]) for v in m["warm"]["steps"].values())
        return math.ceil(m["cold_start"]["init"]["median_ms"]) + steps

    def cost(m, size):
        """Dollars per million rotations at this memory size (duration only)."""
        return billed_ms(m) / 1000 * mb(size) / 1024 * PRICE_GB_S[ARCH] * 1e6

    names = list(sizes[0]["subjects"])
    cols = " | ".join(head(x) for x in sizes)

    def table(title, cell):
        out = ["", title, "", f"| rotator | {cols} |", "|---|" + "---|" * len(sizes)]
        for n in names:
            out.append(f"| {n} | " + " | ".join(cell(x["subjects"][n], x) for x in sizes) + " |")
        return out

    template = open(os.path.join(os.path.dirname(__file__), "..", "infra", "template.yaml")).read()
    default_mb = int(re.search(r"MemorySize: (\d+)", template).group(1))
    timeout_s = int(re.search(r"Timeout: (\d+)", template).group(1))
    lines += [
        "",
        "## Memory size: time and cost at Lambda's CPU share",
        "",
        "Lambda gives a function one vCPU at 1769 MB and a share of one in proportion to memory below",
        "that (128 MB: 7.2%). `bench/run` measures every rotator with its process in a cgroup (v1)",
        f"whose CPU quota is that share of each {cs['period_us'] // 1000} ms period (`cpu.cfs_quota_us`), set",
        "before the binary execs, so init runs limited too; moto and the servers are not limited.",
        f"{cs['runs']} cold starts and {cs['runs']} warm rotations per rotator and size; medians. The",
        "\"no limit\" column runs through the same wrapper and cgroup without a quota. This machine's",
        "cores are x86 (AMD EPYC), not Graviton; the quota reproduces the share, not the core.",
    ]
    if cs.get("load"):
        lines += [
            "This section was measured by a second run right after the others (`BENCH_ONLY=cpu`);",
            f"load averages before and after it: {cs['load']}.",
        ]
    lines += table(
        "Warm rotation, all four steps, median ms:",
        lambda m, x: f(m["warm"]["rotation"]["median_ms"]),
    )
    lines += table(
        "Slowest single step seen (any step, any warm rotation), ms:",
        lambda m, x: f(max(v["max_ms"] for v in m["warm"]["steps"].values())),
    )
    lines += table(
        "Init (exec to the first `/invocation/next`), median ms:",
        lambda m, x: f(m["cold_start"]["init"]["median_ms"]),
    )
    lines += table(
        f"Cost per million rotations, US$ ({ARCH}, ${PRICE_GB_S[ARCH]:.10f}/GB-s; x86_64 is "
        f"${PRICE_GB_S['x86_64']:.10f}/GB-s, 25% more): a cold init plus the four steps' medians, each "
        "rounded up to the ms as Lambda bills; requests ($0.20 per million, 4 per rotation) are the same at every size:",
        lambda m, x: f"{cost(m, x):.2f}",
    )
    # The choice: the size with the lowest total cost over every rotator, and what it costs in time
    # against the unlimited core.
    limited = [x for x in sizes if x["memory_mb"]]
    total = {x["memory_mb"]: sum(cost(m, x) for m in x["subjects"].values()) for x in limited}
    best = min(total, key=total.get)
    at_best = next(x for x in limited if x["memory_mb"] == best)
    full = next(x for x in sizes if not x["memory_mb"])
    larger = sorted(mb_ for mb_ in total if mb_ > best)

    def worst(key):
        """The largest difference (best size minus no limit) of a median over the rotators."""
        return max(
            (key(at_best["subjects"][n]) - key(full["subjects"][n]), n) for n in names
        )

    max_rss = max((w["peak_rss_kib"] or 0) / 1024 for w in r["warm"].values())
    init_gap = worst(lambda m: m["cold_start"]["init"]["median_ms"])
    rot_gap = worst(lambda m: m["warm"]["rotation"]["median_ms"])
    slowest_best = max(
        (max(v["max_ms"] for v in m["warm"]["steps"].values()), n)
        for n, m in at_best["subjects"].items()
    )
    lines += [
        "",
        f"The templates' default: `MemorySize: {default_mb}` (infra/template.yaml Globals; infra/terraform",
        f"`memory_size`), timeout {timeout_s} s.",
        "",
        f"**Choice: {best} MB** ({'unchanged' if best == default_mb else f'was {default_mb} MB'}). It is the",
        f"cheapest size for the rotators together (${total[best]:.2f} per million rotations of each, summed;",
        (f"the next size up, {larger[0]} MB, costs ${total[larger[0]]:.2f})." if larger else ")."),
        "A rotation is mostly waiting for Secrets Manager and the target service, which a larger share",
        "does not shorten, so doubling the memory roughly doubles the price. What the small share costs",
        f"is time: init needs more CPU than one period's quota ({cs['period_us'] * best // 1769 / 1000:.1f} ms at {best} MB),",
        f"so it waits for the next period (up to {init_gap[0]:.0f} ms more than without",
        f"a limit, {init_gap[1]}); a warm rotation takes at most {rot_gap[0]:.0f} ms longer on the median",
        f"({rot_gap[1]}), and a step that does more CPU work at once (TLS handshakes, SCRAM)",
        f"is sometimes throttled: the slowest step seen at {best} MB took {slowest_best[0]:.0f} ms",
        f"({slowest_best[1]}), {slowest_best[0] / 10 / timeout_s:.1f}% of the {timeout_s} s timeout",
        "(github-token's includes the stand-in's one second, above).",
        "Rotations run in the background on a schedule, so a fraction of a second does not matter,",
        f"while every rotation pays the price. Peak RSS is at most {max_rss:.1f} MB (above), far below 128 MB.",
        "Caveats: the quota's period (100 ms) is this bench's, not necessarily Lambda's, and a",
        "Graviton core is not an EPYC core; the times are the ones of this noisy machine.",
    ]

lines += [
    "",
    "## Package size (arm64 zip)",
    "",
    "| binary | zip MB |",
    "|---|---|",
]
for binary in sorted(os.listdir(zip_dir)) if os.path.isdir(zip_dir) else []:
    z = os.path.join(zip_dir, binary, "bootstrap.zip")
    if os.path.exists(z):
        lines.append(f"| {binary} | {os.path.getsize(z) / 1048576:.2f} |")
lines += [
    "",
    "## Scale",
    "",
    "`n` secrets rotated at once (random-password), each by its own function process, as Lambda",
    "scales out, against one local moto server.",
    "",
    "| secrets | wall ms | per rotation median (min-max) ms |",
    "|---|---|---|",
]
for s in r["scale"]:
    p = s["per_rotation"]
    lines.append(f"| {s['secrets']} | {f(s['wall_ms'])} | {spread(p)} |")
lines += ["", "![wall time against concurrent secrets](scale.png)", ""]
open(os.path.join(out, "README.md"), "w").write("\n".join(lines))

xs = [s["secrets"] for s in r["scale"]]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(xs, [s["wall_ms"] for s in r["scale"]], marker="o", label="wall time, all rotations")
ax.plot(xs, [s["per_rotation"]["median_ms"] for s in r["scale"]], marker="s", label="median per rotation")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("secrets rotated concurrently")
ax.set_ylabel("ms")
ax.set_title("Concurrent rotations against one local moto server")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "scale.png"), dpi=100)
