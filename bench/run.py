"""Run every benchmark and print one Markdown table: ``python bench/run.py [--quick]``.

Every number is a ratio against a baseline measured in the same run on the same
machine (absolute times on shared machines mean little). Results, with the date and
the machine, go to ``bench/results.json``; ``BENCHMARKS.md`` explains the method.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import kernel, load, shapes, throughput
from bench.common import BENCH, ROOT, fixture_server, median, run_child

#: Where ``python -m venv /tmp/jai && /tmp/jai/bin/pip install jupyter-ai-magics ipython`` puts it.
DEFAULT_JAI_PYTHON = os.environ.get("BENCH_JAI_PYTHON", "/tmp/jai/bin/python")


def machine() -> dict[str, Any]:
    """What this ran on: CPU model, cores, memory, Python, load average at the start."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg()[0],
    }


def has_jupyter_ai(python: str) -> bool:
    if not Path(python).exists():
        return False
    done = subprocess.run([python, "-c", "import jupyter_ai_magics"], capture_output=True)
    return done.returncode == 0


def run_all(quick: bool, jai_python: str, browser: bool = False) -> dict[str, Any]:
    """Every measurement; ``quick`` does one run of each with smaller streams; ``browser``
    adds JupyterLab + Chromium (bench/browser.py), skipped with one line without them."""
    runs = 1 if quick else 3
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
    }
    started = time.monotonic()

    def step(name: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {name}", file=sys.stderr, flush=True)

    step("extension load")
    results["load"] = {
        "writer_magics": load.compare(sys.executable, "writer_magics", 3 if quick else 7)
    }
    step("extension load: in a kernel")
    results["load"]["kernel"] = load.in_kernel("writer_magics", 3 if quick else 5)
    if has_jupyter_ai(jai_python):
        step("extension load: jupyter_ai_magics")
        results["load"]["jupyter_ai_magics"] = load.compare(
            jai_python, "jupyter_ai_magics", 3 if quick else 7
        )
    else:
        results["load"]["jupyter_ai_magics"] = {
            "skipped": f"no python with jupyter_ai_magics at {jai_python} (see BENCHMARKS.md)"
        }

    chunks = 10_000 if quick else 50_000
    with fixture_server() as fixture:
        step(f"throughput: {chunks} chunks x {runs} runs x bare/sdk/magics")
        results["throughput"] = throughput.measure(fixture, chunks, runs)
        step("kernel: throughput, wire bytes, first token, memory")
        results["kernel"] = kernel.measure(
            fixture, chunks=chunks, runs=runs, ttft_runs=5 if quick else 10
        )
        if not quick:  # 12 answers of about ten seconds each: one run of each
            step("kernel: wire cost by answer shape")
            results["shapes"] = shapes.measure(fixture, 1)
    step("sweep")
    sweep = run_child(["bench/sweep.py", str(runs)])
    sweep["ratio"] = median(sweep["sweep"]) / median(sweep["single"])
    sweep["ratio_at_default"] = sweep["sweep_at_default"] / median(sweep["single"])
    results["sweep"] = sweep
    step("batch: --over 1,000 items (throughput, memory, iopub, 429s)")
    results["batch"] = run_child(["bench/batch.py", "200" if quick else "1000"])
    if browser:
        step("browser: JupyterLab + Chromium, main-thread busy streaming / once")
        results["browser"] = run_child(["bench/browser.py", "--runs", str(runs)])
        if "skipped" in results["browser"]:
            print(f"browser bench skipped: {results['browser']['skipped']}", file=sys.stderr)
    results["seconds"] = time.monotonic() - started
    step("done")
    return results


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(r: dict[str, Any]) -> str:
    """The Markdown table: measure, baseline, ours, ratio, goal, met or missed."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    ours = r["load"]["writer_magics"]
    ms = "{:.0f} ms ({:.0f} ms of it the load line)".format
    rows.append(
        (
            "1. Start a shell + `%load_ext writer_magics`",
            f"{ours['baseline_s'] * 1000:.0f} ms without it",
            ms(ours["with_extension_s"] * 1000, ours["load_ext_line_s"] * 1000),
            f"{ours['ratio']:.2f}x",
            "adds < 50 ms",
            _mark(ours["load_ext_line_s"] < 0.050),
        )
    )
    in_kernel = r["load"].get("kernel")
    if in_kernel is not None:
        rows.append(
            (
                "1. ... `%load_ext writer_magics` in a started kernel (asyncio imported)",
                "-",
                f"{in_kernel['load_ext_line_s'] * 1000:.0f} ms the load line "
                f"(execute request {in_kernel['request_extra_s'] * 1000:.0f} ms over `pass`)",
                "-",
                "< 30 ms",
                _mark(in_kernel["load_ext_line_s"] < 0.030),
            )
        )
    jai = r["load"]["jupyter_ai_magics"]
    if "skipped" in jai:
        rows.append(
            ("1. ... `%load_ext jupyter_ai_magics`", "-", "skipped", "-", "~800 ms", jai["skipped"])
        )
    else:
        rows.append(
            (
                "1. ... `%load_ext jupyter_ai_magics` (own venv)",
                f"{jai['baseline_s'] * 1000:.0f} ms without it",
                ms(jai["with_extension_s"] * 1000, jai["load_ext_line_s"] * 1000),
                f"{jai['ratio']:.2f}x",
                "reference: adds ~800 ms",
                f"adds {jai['load_ext_line_s'] * 1000:.0f} ms",
            )
        )
    t = r["throughput"]
    a, b, c = t["bare"]["cpu_s"], t["sdk"]["cpu_s"], t["magics"]["cpu_s"]
    kc = r["kernel"]["throughput"]["cpu_s"]
    n = f"{t['chunks']:,}"
    rows += [
        (
            f"2. CPU for {n} chunks: (c) `%%chat` in a shell / (a) bare httpx-sse",
            f"{a:.2f} s",
            f"{c:.2f} s",
            f"{c / a:.2f}x",
            "< 1.5x",
            _mark(c / a < 1.5),
        ),
        (
            "2. ... (c) `%%chat` in a shell / (b) writer-sdk",
            f"{b:.2f} s",
            f"{c:.2f} s",
            f"{c / b:.2f}x",
            "< 1x",
            _mark(c < b),
        ),
        (
            "2. ... `%%chat` in a kernel (kernel CPU) / (a) bare",
            f"{a:.2f} s",
            f"{kc:.2f} s",
            f"{kc / a:.2f}x",
            "< 1.5x",
            _mark(kc / a < 1.5),
        ),
        (
            "2. ... `%%chat` in a kernel / (b) writer-sdk",
            f"{b:.2f} s",
            f"{kc:.2f} s",
            f"{kc / b:.2f}x",
            "< 1x",
            _mark(kc < b),
        ),
    ]
    for w in r["kernel"]["wire"]:
        size = f"{w['answer_bytes'] // 1000} KB at {w['tokens_per_second']:,} tok/s"
        rows.append(
            (
                f"3. iopub bytes / answer bytes, {size}",
                f"{w['answer_bytes']:,} B answer",
                f"{w['ratio'] * w['answer_bytes'] / 1000:.0f} KB iopub",
                f"{w['ratio']:.1f}x",
                "<= 3x",
                _mark(w["ratio"] <= 3),
            )
        )
        rows.append(
            (
                f"3. visible updates/s, {size}",
                "-",
                f"{w['updates_per_s']:.1f}/s (longest gap {w['longest_gap_s']:.1f} s)",
                "-",
                ">= 5/s",
                _mark(w["updates_per_s"] >= 5),
            )
        )
    for w in r.get("shapes", []):
        size = f"{w['answer_bytes'] // 1000} KB {w['shape']} at {w['tokens_per_second']:,} tok/s"
        floor = w.get("floor_ratio") or shapes.floor(
            w["shape"], w["answer_bytes"], w["tokens_per_second"]
        )
        if w["answer_bytes"] == max(x["answer_bytes"] for x in r["shapes"]):
            size += f" (x{shapes.growth(r['shapes'], w['shape']):.2f} the 20 KB ratio)"
        rows.append(
            (
                f"3b. iopub content bytes / answer, {size}",
                f"{w['answer_bytes']:,} B answer",
                f"{w['content_ratio'] * w['answer_bytes'] / 1000:.0f} KB content; "
                f"{w['updates_per_s']:.1f} updates/s, longest gap {w['longest_gap_s']:.2f} s; "
                f"floor {floor:.2f}x",
                f"{w['content_ratio']:.1f}x",
                "<= 3x, >= 5/s, gap <= 0.2 s",
                _mark(
                    w["content_ratio"] <= 3
                    and w["updates_per_s"] >= 5
                    and w["longest_gap_s"] <= 0.2
                )
                + (" (floor above 3x: impossible)" if floor > 3 else ""),
            )
        )
    f = r["kernel"]["first_token"]
    rows.append(
        (
            "4. First chunk sent -> first iopub message showing it",
            f"{f['bare_client_s'] * 1000:.1f} ms (bare client receives it)",
            f"{f['ours_s'] * 1000:.1f} ms",
            f"{f['ours_s'] / f['bare_client_s']:.1f}x",
            "< 20 ms",
            _mark(f["ours_s"] < 0.020),
        )
    )
    s = r["sweep"]
    rows.append(
        (
            "5. Sweep of 8 x 1 s latency (max_concurrency 8) / one request",
            f"{median(s['single']):.2f} s",
            f"{median(s['sweep']):.2f} s",
            f"{s['ratio']:.2f}x",
            "< 1.3x",
            _mark(s["ratio"] < 1.3),
        )
    )
    rows.append(
        (
            f"5. ... same sweep at the default max_concurrency ({s['default_limit']})",
            f"{median(s['single']):.2f} s",
            f"{s['sweep_at_default']:.2f} s",
            f"{s['ratio_at_default']:.2f}x",
            "(info)",
            "-",
        )
    )
    m = r["kernel"]["memory"]
    rows.append(
        (
            "6. Kernel peak RSS growth / answer, 1 MB answer",
            f"{m['answer_bytes'] / 1e6:.2f} MB answer",
            f"{(m['peak_rss'] - m['rss_before']) / 1e6:.1f} MB",
            f"{m['growth_ratio']:.1f}x",
            "< 10x",
            _mark(m["growth_ratio"] < 10),
        )
    )
    rows += browser_rows(r.get("browser"))
    if "batch" in r:
        rows += batch_rows(r["batch"])
    head = ("Measure", "Baseline", "Ours", "Ratio", "Goal", "Result")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def browser_rows(b: dict[str, Any] | None) -> list[tuple[str, str, str, str, str, str]]:
    """Rows 3c: renderer main-thread busy time streaming / once (bench/browser.py)."""
    if b is None:
        return []
    if "skipped" in b:
        return [
            (
                "3c. Browser main-thread busy, streaming / once",
                "-",
                "skipped",
                "-",
                "< 5x",
                b["skipped"],
            )
        ]
    return [
        (
            f"3c. Browser main-thread busy, {w['answer_bytes'] // 1000} KB {w['shape']} at "
            f"{w['tokens_per_second']:,} tok/s: streaming / rendered once",
            f"{w['once_busy_s']:.2f} s once",
            f"{w['streaming_busy_s']:.2f} s streaming"
            + (
                f" ({w['view_ratio']:.1f}x without the cost of a cell merely running that long)"
                if "view_ratio" in w
                else ""
            )
            + (
                f"; floor {w['floor_ratio']:.1f}x ({w['floor_busy_s']:.2f} s)"
                if "floor_ratio" in w
                else ""
            )
            + (" (JupyterLab trimmed the outputs)" if w.get("streaming_trimmed") else ""),
            f"{w['ratio']:.1f}x",
            "< 5x",
            "not comparable (trimmed)"
            if w.get("streaming_trimmed")
            else _mark(w["ratio"] < 5)
            + (" (floor above 5x: impossible)" if w.get("floor_ratio", 0) >= 5 else ""),
        )
        for w in b["shapes"]
    ]


def batch_rows(b: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """Rows 7-10: ``--over`` at scale (bench/batch.py)."""
    t, limited = b["batch"], b["rate_limited"]
    n = t["items"]
    return [
        (
            f"7. `--over` {n:,} items x {t['latency']} s, concurrency {t['concurrency']} / ideal",
            f"{t['ideal_s']:.1f} s ideal ({t['single_request_s']:.2f} s measured a request)",
            f"{t['elapsed_s']:.1f} s",
            f"{t['ratio_to_ideal']:.2f}x",
            "< 1.15x",
            _mark(t["ratio_to_ideal"] < 1.15),
        ),
        (
            "8. Kernel RSS growth for that batch / answer bytes (-o kept)",
            f"{t['answer_bytes'] / 1e3:.0f} KB of answers",
            f"{t['rss_growth_bytes'] / 1e6:.2f} MB",
            f"{t['memory_ratio']:.1f}x",
            "< 5x",
            _mark(t["memory_ratio"] < 5),
        ),
        (
            "9. iopub bytes of that batch / answer bytes",
            f"{t['answer_bytes'] / 1e3:.0f} KB of answers",
            f"{t['iopub_bytes'] / 1e3:.0f} KB in {t['iopub_messages']} messages",
            f"{t['iopub_ratio']:.2f}x",
            "< 2x",
            _mark(t["iopub_ratio"] < 2),
        ),
        (
            f"10. `--over` {limited['items']:,} items, a third answered 429 (Retry-After 1 s)",
            f"{limited['rate_limited_resent']} requests refused and resent",
            f"{limited['failed_rows']} failed rows, {limited['elapsed_s']:.0f} s",
            "-",
            "0 failed rows",
            _mark(limited["failed_rows"] == 0),
        ),
    ]


START, END = "<!-- results:start -->", "<!-- results:end -->"


def write_benchmarks_md(results: dict[str, Any]) -> None:
    """Replace the results block of BENCHMARKS.md with this run's date, machine and table."""
    path = ROOT / "BENCHMARKS.md"
    if not path.exists():
        return
    text = path.read_text()
    if START not in text or END not in text:
        return
    m = results["machine"]
    block = (
        f"{START}\n"
        f"Run {results['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
        f"{m['os']}, Python {m['python']} (load average {m['load_average_at_start']:.2f} "
        f"at the start; {results['seconds']:.0f} s in all).\n\n{results['table']}\n{END}"
    )
    head, rest = text.split(START, 1)
    path.write_text(head + block + rest.split(END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run each, smaller streams")
    parser.add_argument(
        "--jai-python",
        default=DEFAULT_JAI_PYTHON,
        help="a python with jupyter-ai-magics installed (skipped when absent)",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="add JupyterLab + Chromium (bench/browser.py; skipped without them)",
    )
    parser.add_argument(
        "--table-only", action="store_true", help="print the table of bench/results.json"
    )
    args = parser.parse_args()
    out = BENCH / "results.json"
    if args.table_only:
        print(table(json.loads(out.read_text())))
        return
    results = run_all(args.quick, args.jai_python, args.browser)
    results["table"] = table(results)
    if not args.quick:
        out.write_text(json.dumps(results, indent=2) + "\n")
        write_benchmarks_md(results)
    m = results["machine"]
    print(f"\n{results['date']} | {m['cpu']}, {m['cores']} cores | Python {m['python']}\n")
    print(results["table"])


if __name__ == "__main__":
    main()
