import { throws as nodeThrows } from "node:assert/strict";
import {
  type BenchEntry,
  type BenchReport,
  escapeXml,
  formatRate,
  mergeReports,
  parseBenchOutput,
  parseReportArgs,
  parseWorkerCounts,
  renderReport,
  renderSvg,
  scalingPlots,
  writeReport,
} from "./report.ts";

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function assertThrows(fn: () => unknown, type: new (...args: never[]) => Error, includes: string) {
  nodeThrows(fn, (error: unknown) => error instanceof type && error.message.includes(includes));
}

function bench(
  file: string,
  group: string | null,
  name: string,
  avgNs: number | undefined,
  baseline = false,
): BenchEntry {
  const ok = avgNs === undefined
    ? undefined
    : { n: 10, avg: avgNs, min: avgNs, max: avgNs, p75: avgNs, p99: avgNs };
  return {
    origin: `file:///repo/bench/${file}`,
    group,
    name,
    baseline,
    results: [ok === undefined ? { failed: "boom" } : { ok }],
  };
}

const w = (n: number) => `${n} worker${n === 1 ? "" : "s"}`;

/** Shapes of the names in bench/*_bench.ts, with made-up timings. */
function synthetic(): BenchReport {
  const benches: BenchEntry[] = [];
  for (const n of [1, 2, 4]) {
    benches.push(
      bench(
        "latch_bench.ts",
        `contention harness, ${w(n)}`,
        `empty batch, ${w(n)} (x1)`,
        1e4,
        true,
      ),
      // 20,000 ops per worker, 1 ms per worker: 20M ops/s whatever the count.
      bench(
        "latch_bench.ts",
        `mutex contended, ${w(n)}`,
        `textbook futex mutex: lock, counter++, unlock; ${w(n)} (x${20_000 * n})`,
        1e6 * n,
        true,
      ),
      bench(
        "latch_bench.ts",
        `mutex contended, ${w(n)}`,
        `sabre Mutex acquire/release: lock, counter++, unlock; ${w(n)} (x${20_000 * n})`,
        5e5 * n,
      ),
      bench(
        "latch_bench.ts",
        `mutex contended, ${w(n)}`,
        `multithreading Mutex: lock, counter++, unlock; ${w(n)} (x${20_000 * n})`,
        n === 4 ? undefined : 1e8 * n,
      ),
    );
  }
  for (const readers of [1, 3]) {
    const shape = `1 writer + ${readers} reader${readers === 1 ? "" : "s"}`;
    for (const map of ["sharedmap", "sabre"]) {
      benches.push(bench(
        "hashmap_bench.ts",
        `concache reads, ${shape}, 100000 keys uniform`,
        `${map}: reads beside ${shape} (x${10_000 * readers})`,
        map === "sabre" ? 1e5 : 1e6,
        map === "sharedmap",
      ));
    }
  }
  benches.push(
    bench(
      "btree_bench.ts",
      "read scaling: lookups, 1000 keys, 1 vs 2 workers",
      "sabre BPlusTree.get, 1 worker (x1000)",
      1e5,
      true,
    ),
    bench(
      "btree_bench.ts",
      "read scaling: lookups, 1000 keys, 1 vs 2 workers",
      "sabre BPlusTree.get, 2 workers (x2000)",
      1e5,
    ),
    bench("btree_bench.ts", 'get <1M> & "more"', "sabre BPlusTree.get (x1000)", 5e4, true),
    bench(
      "seqlock_bench.ts",
      "record read, 2 readers + writer at 100 Hz",
      "read; 2 readers (x10)",
      40,
    ),
    bench("primitives_bench.ts", null, "no group at all", 3),
  );
  return { version: 1, runtime: "Deno/2.9.6 x86_64-unknown-linux-gnu", cpu: "Test CPU", benches };
}

Deno.test("report: worker counts are read by role", () => {
  assert(parseWorkerCounts("mutex contended, 1 worker").workers === 1, "1 worker");
  const both = parseWorkerCounts("concache reads, 1 writer + 3 readers, 100 keys");
  assert(both.writers === 1 && both.readers === 3, JSON.stringify(both));
  assert(parseWorkerCounts("1 vs 2 workers").workers === 2, "the last count wins");
  assert(Object.keys(parseWorkerCounts("get, 1M keys (x1000)")).length === 0, "no count");
});

Deno.test("report: scaling plots gather groups that differ only in the count", () => {
  const plots = scalingPlots(synthetic());
  const titles = plots.map((p) => `${p.origin} · ${p.title}`);
  assert(plots.length === 3, `plots: ${titles.join(" / ")}`);

  const mutex = plots.find((p) => p.origin === "bench/latch_bench.ts")!;
  assert(mutex.title === "mutex contended, N workers" && mutex.role === "workers", mutex.title);
  assert(mutex.groups.length === 3, "one group per worker count");
  const names = mutex.series.map((s) => s.name);
  assert(
    names.join(" / ") ===
      "textbook futex mutex: lock, counter++, unlock / sabre Mutex acquire/release: lock, " +
        "counter++, unlock / multithreading Mutex: lock, counter++, unlock",
    names.join(" / "),
  );
  const [textbook, sabre, peer] = mutex.series;
  assert(textbook.baseline && !textbook.sabre && sabre.sabre && !peer.sabre, "series kinds");
  assert(sabre.points.map((p) => p.workers).join() === "1,2,4", "x values");
  // 20,000 × n ops in 0.5 ms × n: 40M ops/s.
  assert(sabre.points.every((p) => Math.abs(p.opsPerSecond - 4e7) < 1), "throughput");
  assert(peer.points.length === 2, "the failed bench is left out");

  const concache = plots.find((p) => p.role === "readers")!;
  assert(
    concache.title === "concache reads, 1 writer + N readers, 100000 keys uniform",
    concache.title,
  );
  assert(
    concache.series.map((s) => s.name).join() === "sharedmap: reads beside 1 writer + N readers," +
        "sabre: reads beside 1 writer + N readers",
    concache.series.map((s) => s.name).join(),
  );

  const btree = plots.find((p) => p.origin === "bench/btree_bench.ts")!;
  assert(btree.title === "read scaling: lookups, 1000 keys, 1 vs 2 workers", btree.title);
  assert(btree.series.length === 1 && btree.series[0].name === "sabre BPlusTree.get", "btree");
  assert(btree.series[0].points.map((p) => p.workers).join() === "1,2", "btree x values");
  assert(new Set(plots.map((p) => p.slug)).size === plots.length, "unique slugs");
  assert(plots.every((p) => /^[a-z0-9-]+$/.test(p.slug)), "slugs are file-name safe");
});

Deno.test("report: groups without worker counts get no plot; an empty report gets none", () => {
  const report = synthetic();
  report.benches = report.benches.filter((b) =>
    !/\d+ (worker|reader|writer)/.test(b.name + b.group)
  );
  assert(scalingPlots(report).length === 0, "no plots without counts");
  assert(scalingPlots({ ...report, benches: [] }).length === 0, "no plots without benches");
});

Deno.test("report: SVG is well formed and escapes text", () => {
  for (const plot of scalingPlots(synthetic())) {
    plot.title += " <&>";
    const svg = renderSvg(plot, "Test CPU, 2 cores");
    assert(svg.startsWith("<svg ") && svg.trimEnd().endsWith("</svg>"), "svg element");
    assert(!svg.includes("<&>") && svg.includes("&#60;&#38;&#62;"), "escaped");
    assert(!svg.includes("NaN") && !svg.includes("Infinity"), "finite coordinates");
    const opened = (svg.match(/<g>/g) ?? []).length;
    assert(
      opened === (svg.match(/<\/g>/g) ?? []).length && opened === plot.series.length,
      "groups",
    );
    for (const series of plot.series) assert(svg.includes(escapeXml(series.name)), series.name);
  }
  assert(escapeXml(`a&b<"c">'`) === "a&#38;b&#60;&#34;c&#34;&#62;&#39;", "escapeXml");
  assert(formatRate(1_234_567) === "1.23M" && formatRate(950) === "950", "formatRate");
});

Deno.test("report: Markdown names the machine and embeds the plots", () => {
  const report = synthetic();
  const plots = scalingPlots(report);
  const md = renderReport(report, "CPU Test CPU, 2 cores, linux x86_64, Deno 2.9.6", plots);
  assert(md.includes("Machine: CPU Test CPU, 2 cores, linux x86_64, Deno 2.9.6."), "machine");
  for (const plot of plots) assert(md.includes(`](plots/${plot.slug}.svg)`), plot.slug);
  assert(md.includes("| bench | 1 worker | 2 workers | 4 workers |"), "table header");
  assert(md.includes("## bench/primitives_bench.ts · (no group)"), "ungrouped benches kept");
  assert(
    md.includes("| multithreading Mutex: lock, counter++, unlock; 4 workers | failed | – |"),
    "failed",
  );
});

Deno.test("report: writes RESULTS.md and one SVG per plot", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = new URL(`file://${dir}/`);
    await Deno.mkdir(new URL("plots/", root));
    await Deno.writeTextFile(new URL("plots/stale.svg", root), "<svg/>");
    const text = "some console output\n" + JSON.stringify(synthetic());
    const written = await writeReport(parseBenchOutput(text), {
      cpu: "Test CPU",
      cores: 2,
      os: "linux x86_64",
      deno: "Deno 2.9.6, V8 x",
    }, root);
    assert(written.length === 4 && written[0].endsWith("/RESULTS.md"), written.join());
    const files = [...Deno.readDirSync(new URL("plots/", root))].map((e) => e.name).sort();
    assert(files.length === 3 && !files.includes("stale.svg"), files.join());
    const md = await Deno.readTextFile(new URL("RESULTS.md", root));
    assert(md.includes("Machine: CPU Test CPU, 2 cores, linux x86_64, Deno 2.9.6, V8 x."), md);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: SeqLock, SeqCell, HybridLatch and Xt benches are drawn solid, the locks they beat dashed", () => {
  const names = [
    "RwLock acquireRead, plain reads, releaseRead",
    "SeqLock readBegin/readRetry, Atomics loads",
    "SeqCell.readInto(target)",
    "HybridLatch.read(fn), Atomics loads",
    "Mutex acquire, plain reads, release",
  ];
  const benches = [1, 2].flatMap((n) =>
    names.map((name, i) => ({
      origin: "file:///x/bench/seqlock_bench.ts",
      group: `record read, ${n} reader${n === 1 ? "" : "s"} + writer`,
      name: `${name}; ${n} reader${n === 1 ? "" : "s"} (x${1000 * n})`,
      baseline: i === 0,
      results: [{
        ok: { n: 10, min: 1e4, max: 1e4, avg: 1e4, p75: 1e4, p99: 1e4, p995: 1e4, p999: 1e4 },
      }],
    }))
  );
  const [plot] = scalingPlots({ version: 1, runtime: "Deno", cpu: "x", benches } as BenchReport);
  const solid = plot.series.filter((s) => s.sabre).map((s) => s.name.split(/[ .]/)[0]);
  assert(solid.join() === "SeqLock,SeqCell,HybridLatch", `solid: ${solid.join()}`);
});

Deno.test("report: mergeReports joins bench files in order and refuses an empty list", () => {
  const first = synthetic();
  const second = { ...synthetic(), cpu: "Other CPU" };
  const merged = mergeReports([first, second]);
  assert(merged.cpu === first.cpu, merged.cpu);
  assert(merged.benches.length === first.benches.length * 2, String(merged.benches.length));
  assert(merged.benches[first.benches.length] === second.benches[0], "order");
  assertThrows(() => mergeReports([]), RangeError, "no report");
});

Deno.test("report: parseReportArgs reads --run, --cores and --counts, and says what is wrong", () => {
  const args = parseReportArgs(["--cores", "16", "a.json,b.json", "--counts", "W=1,2", "out"]);
  assert(args.cores === 16 && args.counts === "W=1,2" && !args.run, JSON.stringify(args));
  assert(args.positional.join(" ") === "a.json,b.json out", args.positional.join(" "));
  assert(parseReportArgs(["--run"]).run, "--run");
  assertThrows(() => parseReportArgs(["--cores", "0"]), RangeError, 'got "0"');
  assertThrows(() => parseReportArgs(["--cores", "x1"]), RangeError, 'got "x1"');
  assertThrows(() => parseReportArgs(["--counts"]), TypeError, "--counts needs a value");
});
