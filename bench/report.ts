/**
 * Turns `deno bench --json` output into `bench/RESULTS.md`: one table per
 * bench group, each figure as time per operation and as a ratio against the
 * group's baseline measured in the same run.
 *
 * Run: `deno task bench:report` (it runs the benches first).
 *
 * A bench whose name ends in `(xN)` runs N operations per iteration; its time
 * per operation is the iteration time divided by N.
 *
 * @module
 */

interface BenchStats {
  n: number;
  avg: number;
  min: number;
  max: number;
  p75: number;
  p99: number;
}

interface BenchEntry {
  origin: string;
  group: string | null;
  name: string;
  baseline: boolean;
  results: Array<{ ok?: BenchStats; failed?: unknown }>;
}

interface BenchReport {
  version: number;
  runtime: string;
  cpu: string;
  benches: BenchEntry[];
}

/** Operations per iteration, read from a trailing `(xN)` in the name. */
export function opsPerIteration(name: string): number {
  const match = /\(x(\d+)\)\s*$/.exec(name);
  return match ? Number(match[1]) : 1;
}

/** Formats nanoseconds with a unit that keeps three significant digits. */
export function formatNs(ns: number): string {
  if (ns < 1) return `${ns.toFixed(2)} ns`;
  if (ns < 1000) return `${ns.toPrecision(3)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toPrecision(3)} µs`;
  return `${(ns / 1e6).toPrecision(3)} ms`;
}

/** Renders the Markdown report for one `deno bench --json` output. */
export function renderReport(report: BenchReport, machine: string): string {
  const lines: string[] = [
    "# sabre benchmark results",
    "",
    `Machine: ${machine}. Runtime: ${report.runtime}. CPU: ${report.cpu}.`,
    "",
    "Each figure is the mean time per operation; the ratio compares it with the",
    "group's baseline (marked ★) measured in the same run: below 1 is faster.",
    "",
  ];
  const groups = new Map<string, BenchEntry[]>();
  for (const bench of report.benches) {
    const key = `${
      bench.origin.replace(/^.*\/bench\//, "bench/").replace(/^file:\/\/.*\//, "")
    } · ${bench.group ?? "(no group)"}`;
    groups.set(key, [...(groups.get(key) ?? []), bench]);
  }
  for (const [key, benches] of groups) {
    const perOp = (b: BenchEntry) => {
      const ok = b.results[0]?.ok;
      return ok ? ok.avg / opsPerIteration(b.name) : NaN;
    };
    const baseline = benches.find((b) => b.baseline);
    const base = baseline ? perOp(baseline) : NaN;
    lines.push(`## ${key}`, "", "| bench | time/op | ratio to baseline |", "| --- | ---: | ---: |");
    for (const bench of benches) {
      const t = perOp(bench);
      const ratio = Number.isFinite(t) && Number.isFinite(base) ? (t / base).toFixed(2) : "–";
      const label = bench.name.replace(/\s*\(x\d+\)\s*$/, "");
      lines.push(
        `| ${bench.baseline ? "★ " : ""}${label} | ${
          Number.isFinite(t) ? formatNs(t) : "failed"
        } | ${ratio} |`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const input = Deno.args[0] ?? "bench/results.json";
  const text = await Deno.readTextFile(input);
  // deno bench may print console output before the JSON document.
  const report = JSON.parse(text.slice(text.indexOf("{"))) as BenchReport;
  const machine = `${navigator.hardwareConcurrency} cores, ${Deno.build.os} ${Deno.build.arch}`;
  const out = new URL("./RESULTS.md", import.meta.url);
  await Deno.writeTextFile(out, renderReport(report, machine) + "\n");
  console.log(`wrote ${out.pathname.replace(/^.*\/bench\//, "bench/")}`);
}
