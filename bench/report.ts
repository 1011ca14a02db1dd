/**
 * Turns `deno bench --json` output into `bench/RESULTS.md`: one table per
 * bench group, each figure as time per operation and as a ratio against the
 * group's baseline measured in the same run.
 *
 * Run: `deno task bench:report` (it runs the benches first), or
 * `deno run --allow-read --allow-write bench/report.ts results.json [outdir]`
 * (default outdir: `bench/`). The input may name several outputs,
 * comma-separated (`a.json,b.json`), which are joined in order. For a run
 * taken on another machine, `--cores N` gives its core count (the CPU model
 * comes from the JSON) and `--counts "SABRE_BENCH_WORKERS=1,2"` the worker
 * counts it used.
 *
 * A bench whose name ends in `(xN)` runs N operations per iteration; its time
 * per operation is the iteration time divided by N.
 *
 * Scaling plots: benches whose name or group carries a worker count
 * ("1 worker", "2 workers", "3 readers", "1 writer") are gathered across
 * groups that differ only in that count, and drawn as throughput (operations
 * per second, all workers together) against the count, one line per bench
 * (sabre and its peers on the same plot), as hand-written SVG files in
 * `bench/plots/`, embedded in the report. Groups without a count, or with
 * a single count, get no plot.
 *
 * @module
 */

/** Timing of one bench, in nanoseconds per iteration (a subset of `deno bench --json`). */
export interface BenchStats {
  /** Iterations measured. */
  n: number;
  /** Mean time per iteration. */
  avg: number;
  /** Fastest iteration. */
  min: number;
  /** Slowest iteration. */
  max: number;
  /** 75th percentile. */
  p75: number;
  /** 99th percentile. */
  p99: number;
}

/** One bench of a `deno bench --json` report. */
export interface BenchEntry {
  /** URL of the bench file. */
  origin: string;
  /** `Deno.bench` group, or null. */
  group: string | null;
  /** `Deno.bench` name. */
  name: string;
  /** Whether it is its group's baseline. */
  baseline: boolean;
  /** One result per run; `ok` when it ran. */
  results: Array<{ ok?: BenchStats; failed?: unknown }>;
}

/** A `deno bench --json` report. */
export interface BenchReport {
  /** Format version. */
  version: number;
  /** Such as "Deno/2.9.6 x86_64-unknown-linux-gnu". */
  runtime: string;
  /** CPU model as `deno bench` saw it. */
  cpu: string;
  /** Every bench, in run order. */
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

/** Formats an axis tick: 2500000 → "2.5M", 1000000000 → "1G". */
function formatTick(value: number): string {
  if (value === 0) return "0";
  for (const [unit, scale] of [["G", 1e9], ["M", 1e6], ["k", 1e3]] as const) {
    if (value >= scale) return `${Number((value / scale).toPrecision(3))}${unit}`;
  }
  return `${Number(value.toPrecision(3))}`;
}

/** Formats a rate with k/M/G and three significant digits: 1234567 → "1.23M". */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "–";
  if (perSecond >= 1e9) return `${(perSecond / 1e9).toPrecision(3)}G`;
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toPrecision(3)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toPrecision(3)}k`;
  return perSecond.toPrecision(3);
}

/** Mean time per operation of a bench in nanoseconds; NaN when it failed. */
function timePerOp(bench: BenchEntry): number {
  const ok = bench.results[0]?.ok;
  return ok ? ok.avg / opsPerIteration(bench.name) : NaN;
}

/** The bench file's path from `bench/` on, or its file name. */
function shortOrigin(origin: string): string {
  return origin.replace(/^.*\/bench\//, "bench/").replace(/^file:\/\/.*\//, "");
}

// ---------------------------------------------------------------- scaling

/** What a count in a bench name counts. */
export type WorkerRole = "workers" | "readers" | "writers" | "threads";

/** Roles a worker count can have in a bench name, in order of preference for the x axis. */
const ROLES: readonly WorkerRole[] = ["workers", "readers", "writers", "threads"];

const COUNT_PATTERN = /\b(\d+)\s+(worker|reader|writer|thread)s?\b/gi;

/**
 * The worker counts in a bench or group name, by role: "1 writer + 3
 * readers" gives `{ writers: 1, readers: 3 }`. When a role appears twice,
 * the last one wins ("1 vs 2 workers" gives 2).
 */
export function parseWorkerCounts(text: string): Partial<Record<WorkerRole, number>> {
  const counts: Partial<Record<WorkerRole, number>> = {};
  for (const match of text.matchAll(COUNT_PATTERN)) {
    counts[`${match[2].toLowerCase()}s` as WorkerRole] = Number(match[1]);
  }
  return counts;
}

/** Replaces the counts of `role` in `text` with "N" ("2 workers" → "N workers"). */
function withoutCount(text: string, role: WorkerRole): string {
  return text.replace(
    COUNT_PATTERN,
    (whole, _count, noun: string) =>
      `${noun.toLowerCase()}s` === role ? `N ${noun.toLowerCase()}s` : whole,
  );
}

/** One measured point of a scaling series. */
export interface ScalingPoint {
  /** The worker count (of the plot's role). */
  workers: number;
  /** Operations per second, all workers together. */
  opsPerSecond: number;
}

/** Names of benches drawn as solid lines (see {@linkcode ScalingSeries.sabre}). */
const SUBJECT = /\bsabre\b|^(SeqLock|SeqCell|HybridLatch|Xt\.|Loc\.|Op\.)/i;

/** One line of a scaling plot: the same bench at several worker counts. */
export interface ScalingSeries {
  /** The bench name without its count, such as "sabre Mutex acquire/release: lock, counter++, unlock". */
  name: string;
  /**
   * True for the benches of what a plot is about: named "sabre …", or
   * starting with one of sabre's lock-free read or transaction APIs
   * (SeqLock, SeqCell, HybridLatch, Xt., Loc., Op.); false for peers and
   * for the locks they are compared with.
   */
  sabre: boolean;
  /** True when the bench is its group's baseline. */
  baseline: boolean;
  /** Points by ascending worker count. */
  points: ScalingPoint[];
}

/** Throughput against worker count for benches that differ only in that count. */
export interface ScalingPlot {
  /** The group name with the varying count written "N". */
  title: string;
  /** Bench file, from `bench/` on. */
  origin: string;
  /** What the x axis counts. */
  role: WorkerRole;
  /** File name stem, unique among the plots of one report: `bench/plots/<slug>.svg`. */
  slug: string;
  /** The groups the points come from, in run order. */
  groups: string[];
  /** One line per bench. */
  series: ScalingSeries[];
}

/** Groups left out of plots: the contention harness's own overhead. */
const UNPLOTTED_GROUP = /^contention harness\b/;

function slugify(text: string): string {
  const slug = text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return slug.slice(0, 80).replace(/-+$/, "") || "plot";
}

/**
 * Finds the scaling plots in a report: benches with a worker count in their
 * name or group, gathered over groups that differ only in that count (the
 * role whose count varies most becomes the x axis; other counts stay in the
 * title). A plot needs at least two distinct counts. Failed benches are left
 * out.
 */
export function scalingPlots(report: BenchReport): ScalingPlot[] {
  interface Item {
    bench: BenchEntry;
    group: string;
    label: string;
    origin: string;
    counts: Partial<Record<WorkerRole, number>>;
  }
  // First pass: family = same file and same group once every count is removed.
  const families = new Map<string, Item[]>();
  for (const bench of report.benches) {
    const group = bench.group ?? "";
    if (UNPLOTTED_GROUP.test(group) || !(timePerOp(bench) > 0)) continue;
    const label = bench.name.replace(/\s*\(x\d+\)\s*$/, "");
    const counts = { ...parseWorkerCounts(group), ...parseWorkerCounts(label) };
    if (Object.keys(counts).length === 0) continue;
    const origin = shortOrigin(bench.origin);
    const key = `${origin}\u0000${ROLES.reduce((g, role) => withoutCount(g, role), group)}`;
    families.set(key, [...(families.get(key) ?? []), { bench, group, label, origin, counts }]);
  }
  const plots: ScalingPlot[] = [];
  const slugs = new Set<string>();
  for (const items of families.values()) {
    // The x axis: the role with the most distinct counts.
    let role: WorkerRole | undefined;
    let most = 1;
    for (const r of ROLES) {
      const distinct = new Set(items.flatMap((i) => i.counts[r] ?? [])).size;
      if (distinct > most) {
        role = r;
        most = distinct;
      }
    }
    if (role === undefined) continue;
    const x = role;
    // Second pass: one plot per combination of the other roles' counts.
    const byRest = new Map<string, Item[]>();
    for (const item of items) {
      if (item.counts[x] === undefined) continue;
      const rest = JSON.stringify(ROLES.filter((r) => r !== x).map((r) => item.counts[r] ?? null));
      byRest.set(rest, [...(byRest.get(rest) ?? []), item]);
    }
    for (const members of byRest.values()) {
      if (new Set(members.map((m) => m.counts[x])).size < 2) continue;
      const groups = [...new Set(members.map((m) => m.group))];
      const title = groups.length === 1 ? groups[0] : withoutCount(groups[0], x);
      const series = new Map<string, ScalingSeries>();
      for (const m of members) {
        const name = withoutCount(m.label, x).replace(/\s*[,;]\s*N \w+$/, "").trim();
        let line = series.get(name);
        if (line === undefined) {
          line = { name, sabre: SUBJECT.test(name), baseline: false, points: [] };
          series.set(name, line);
        }
        line.baseline ||= m.bench.baseline;
        const workers = m.counts[x]!;
        const opsPerSecond = 1e9 / timePerOp(m.bench);
        const at = line.points.findIndex((p) => p.workers === workers);
        if (at >= 0) line.points[at] = { workers, opsPerSecond };
        else line.points.push({ workers, opsPerSecond });
      }
      for (const line of series.values()) line.points.sort((a, b) => a.workers - b.workers);
      let slug = slugify(
        `${members[0].origin.replace(/^bench\/|_bench\.ts$|\.ts$/g, "")} ${title}`,
      );
      for (let n = 2; slugs.has(slug); n++) slug = `${slug.replace(/-\d+$/, "")}-${n}`;
      slugs.add(slug);
      plots.push({
        title,
        origin: members[0].origin,
        role: x,
        slug,
        groups,
        series: [...series.values()],
      });
    }
  }
  return plots;
}

// ---------------------------------------------------------------- SVG

const PALETTE = [
  "#d62728",
  "#1f77b4",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#8c564b",
  "#e377c2",
  "#17becf",
];

/** Escapes text for SVG (XML) content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round numbers for a linear axis from 0 to at least `max`: about 5 ticks. */
function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = 0; t < max + step * 0.999; t += step) ticks.push(t);
  return ticks;
}

/**
 * Renders one scaling plot as a standalone SVG document: throughput on the
 * y axis (linear from 0, or logarithmic when the series differ by more
 * than 30×), the worker counts on the x axis, one colored line per series
 * (sabre's solid and thick, peers dashed), and a legend below.
 */
export function renderSvg(plot: ScalingPlot, caption = ""): string {
  const width = 720;
  const left = 76;
  const right = 24;
  const top = caption ? 58 : 44;
  const plotHeight = 260;
  const legendTop = top + plotHeight + 52;
  const height = legendTop + plot.series.length * 20 + 12;
  const plotWidth = width - left - right;

  const xs = [...new Set(plot.series.flatMap((s) => s.points.map((p) => p.workers)))].sort((a, b) =>
    a - b
  );
  const xMin = xs[0];
  const xMax = xs[xs.length - 1];
  const pad = 28; // keeps the first and last points off the frame
  const px = (w: number) =>
    xMax === xMin
      ? left + plotWidth / 2
      : left + pad + ((w - xMin) / (xMax - xMin)) * (plotWidth - 2 * pad);

  const ys = plot.series.flatMap((s) => s.points.map((p) => p.opsPerSecond)).filter((y) => y > 0);
  const yMax = Math.max(...ys);
  const yMin = Math.min(...ys);
  const log = yMax / yMin > 30;
  let ticks: number[];
  let py: (y: number) => number;
  if (log) {
    const lo = Math.floor(Math.log10(yMin));
    const hi = Math.ceil(Math.log10(yMax));
    ticks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
    py = (y) => top + plotHeight - ((Math.log10(y) - lo) / Math.max(1, hi - lo)) * plotHeight;
  } else {
    ticks = linearTicks(yMax);
    const top_ = ticks[ticks.length - 1];
    py = (y) => top + plotHeight - (y / top_) * plotHeight;
  }
  const f = (n: number) => n.toFixed(1);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(plot.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${
      escapeXml(plot.title)
    }</text>`,
  ];
  if (caption) {
    out.push(
      `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555555">${
        escapeXml(caption)
      }</text>`,
    );
  }
  // Grid and y axis labels.
  for (const t of ticks) {
    const y = f(py(t));
    out.push(
      `<line x1="${left}" y1="${y}" x2="${width - right}" y2="${y}" stroke="#e3e3e3"/>`,
      `<text x="${left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#333333">${
        formatTick(t)
      }</text>`,
    );
  }
  // X axis ticks.
  for (const w of xs) {
    const x = f(px(w));
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotHeight}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${top + plotHeight + 18}" text-anchor="middle" fill="#333333">${w}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top + plotHeight}" x2="${width - right}" y2="${
      top + plotHeight
    }" stroke="#333333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#333333"/>`,
    `<text x="${left + plotWidth / 2}" y="${
      top + plotHeight + 38
    }" text-anchor="middle" fill="#333333">${plot.role}</text>`,
    `<text transform="translate(16 ${
      top + plotHeight / 2
    }) rotate(-90)" text-anchor="middle" fill="#333333">operations/s, all ${plot.role}${
      log ? " (log scale)" : ""
    }</text>`,
  );
  // Series and legend.
  plot.series.forEach((series, i) => {
    const color = PALETTE[i % PALETTE.length];
    const dash = series.sabre ? "" : ` stroke-dasharray="6 4"`;
    const stroke = series.sabre ? 2.5 : 1.6;
    const points = series.points.filter((p) => p.opsPerSecond > 0);
    const name = escapeXml(series.name);
    out.push(`<g><title>${name}</title>`);
    if (points.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="${stroke}"${dash} points="${
          points.map((p) => `${f(px(p.workers))},${f(py(p.opsPerSecond))}`).join(" ")
        }"/>`,
      );
    }
    for (const p of points) {
      out.push(
        `<circle cx="${f(px(p.workers))}" cy="${
          f(py(p.opsPerSecond))
        }" r="3.5" fill="${color}"><title>${name}: ${
          formatRate(p.opsPerSecond)
        } ops/s at ${p.workers} ${plot.role}</title></circle>`,
      );
    }
    out.push(`</g>`);
    const ly = legendTop + i * 20;
    out.push(
      `<line x1="${left}" y1="${ly}" x2="${
        left + 28
      }" y2="${ly}" stroke="${color}" stroke-width="${stroke}"${dash}/>`,
      `<text x="${left + 36}" y="${ly}" dominant-baseline="middle" fill="#222222">${name}${
        series.baseline ? " (baseline)" : ""
      }</text>`,
    );
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------- report

/** Where the report ran: CPU, cores, OS and Deno version. */
export interface MachineInfo {
  /** CPU model, from the bench JSON. */
  cpu: string;
  /** Logical cores, from `navigator.hardwareConcurrency`. */
  cores: number;
  /** Such as "linux x86_64 (6.8.0)". */
  os: string;
  /** Such as "Deno 2.9.6, V8 15.0.245.2-rusty". */
  deno: string;
}

/** The machine this process runs on, with the CPU named by the bench report. */
export function currentMachine(report: BenchReport): MachineInfo {
  let release = "";
  try {
    const sys = Deno.permissions.querySync({ name: "sys", kind: "osRelease" });
    if (sys.state === "granted") release = ` (${Deno.osRelease()})`;
  } catch {
    // no osRelease: leave it out
  }
  return {
    cpu: report.cpu,
    cores: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.build.arch}${release}`,
    deno: `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}`,
  };
}

/** "CPU AMD EPYC, 2 cores, linux x86_64, Deno 2.9.6, V8 …". */
export function describeMachine(machine: MachineInfo): string {
  return `CPU ${machine.cpu}, ${machine.cores} cores, ${machine.os}, ${machine.deno}`;
}

/**
 * Renders the Markdown report for one `deno bench --json` output. `machine`
 * names where it ran (see {@linkcode describeMachine}); `plots` are embedded
 * as `plots/<slug>.svg` (relative to the report) with a table of their
 * figures, and linked from the tables of their groups.
 */
export function renderReport(
  report: BenchReport,
  machine: string,
  plots: readonly ScalingPlot[] = [],
  counts = "",
): string {
  const lines: string[] = [
    "# sabre benchmark results",
    "",
    `Machine: ${machine}. Bench runtime: ${report.runtime}.`,
    "",
    ...(counts === "" ? [] : [`Worker counts: ${counts}.`, ""]),
    "Each figure is the mean time per operation; the ratio compares it with the",
    "group's baseline (marked ★) measured in the same run: below 1 is faster.",
    "",
  ];
  const plotOf = new Map<string, ScalingPlot>();
  for (const plot of plots) {
    for (const group of plot.groups) plotOf.set(`${plot.origin} · ${group}`, plot);
  }
  if (plots.length > 0) {
    lines.push(
      "## Throughput against workers",
      "",
      "Operations per second of all workers together (higher is better); sabre's",
      "benches are solid lines, peers and baselines dashed.",
      "",
    );
    for (const plot of plots) {
      const xs = [...new Set(plot.series.flatMap((s) => s.points.map((p) => p.workers)))].sort((
        a,
        b,
      ) => a - b);
      lines.push(
        `### ${plot.origin} · ${plot.title}`,
        "",
        `![${plot.title.replace(/[[\]]/g, "")}](plots/${plot.slug}.svg)`,
        "",
        `| bench | ${
          xs.map((x) => `${x} ${x === 1 ? plot.role.slice(0, -1) : plot.role}`).join(" | ")
        } |`,
        `| --- | ${xs.map(() => "---:").join(" | ")} |`,
      );
      for (const series of plot.series) {
        const cells = xs.map((x) => {
          const point = series.points.find((p) => p.workers === x);
          return point ? `${formatRate(point.opsPerSecond)}/s` : "–";
        });
        lines.push(`| ${series.baseline ? "★ " : ""}${series.name} | ${cells.join(" | ")} |`);
      }
      lines.push("");
    }
  }
  const groups = new Map<string, BenchEntry[]>();
  for (const bench of report.benches) {
    const key = `${shortOrigin(bench.origin)} · ${bench.group ?? "(no group)"}`;
    groups.set(key, [...(groups.get(key) ?? []), bench]);
  }
  for (const [key, benches] of groups) {
    const baseline = benches.find((b) => b.baseline);
    const base = baseline ? timePerOp(baseline) : NaN;
    lines.push(`## ${key}`, "");
    const plot = plotOf.get(key);
    if (plot !== undefined) {
      lines.push(`Plotted against ${plot.role}: [plot](plots/${plot.slug}.svg).`, "");
    }
    lines.push("| bench | time/op | ratio to baseline |", "| --- | ---: | ---: |");
    for (const bench of benches) {
      const t = timePerOp(bench);
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

/**
 * Writes `RESULTS.md` and `plots/<slug>.svg` into `dir` (a directory URL
 * ending in "/"), replacing the SVG files a previous run left in `plots/`.
 * Returns the paths written.
 */
export async function writeReport(
  report: BenchReport,
  machine: MachineInfo,
  dir: URL,
  counts = "",
): Promise<string[]> {
  const plots = scalingPlots(report);
  const plotDir = new URL("plots/", dir);
  await Deno.mkdir(plotDir, { recursive: true });
  for await (const entry of Deno.readDir(plotDir)) {
    if (entry.isFile && entry.name.endsWith(".svg")) {
      await Deno.remove(new URL(entry.name, plotDir));
    }
  }
  const written: string[] = [];
  const caption = `${machine.cpu}, ${machine.cores} cores, ${machine.deno.replace(/,.*$/, "")}`;
  for (const plot of plots) {
    const file = new URL(`${plot.slug}.svg`, plotDir);
    await Deno.writeTextFile(file, renderSvg(plot, caption));
    written.push(file.pathname);
  }
  const results = new URL("RESULTS.md", dir);
  await Deno.writeTextFile(
    results,
    renderReport(report, describeMachine(machine), plots, counts) + "\n",
  );
  written.unshift(results.pathname);
  return written;
}

/** Parses `deno bench --json` output, which may have console output before the JSON document. */
export function parseBenchOutput(text: string): BenchReport {
  return JSON.parse(text.slice(text.indexOf("{"))) as BenchReport;
}

/** Worker counts the report's bench run uses unless the environment sets them. */
export const REPORT_COUNTS: Readonly<Record<string, string>> = {
  SABRE_BENCH_WORKERS: "1,2,4",
  SABRE_BENCH_READERS: "1,2,4",
};

/**
 * Runs every bench with `deno bench --json` (the {@linkcode REPORT_COUNTS}
 * filled in where the environment leaves them unset), writes the raw output
 * to `output`, and returns it with the counts it used, as "NAME=value, …".
 */
export async function runBenches(output: string): Promise<{ text: string; counts: string }> {
  const env: Record<string, string> = {};
  for (const [name, fallback] of Object.entries(REPORT_COUNTS)) {
    env[name] = Deno.env.get(name) || fallback;
  }
  if (Deno.env.get("SABRE_BENCH_WRITERS")) {
    env.SABRE_BENCH_WRITERS = Deno.env.get("SABRE_BENCH_WRITERS")!;
  }
  const counts = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(", ");
  console.log(`deno bench --json with ${counts}`);
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["bench", "--allow-read", "--allow-env", "--json"],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(run.stdout);
  await Deno.writeTextFile(output, text);
  if (!run.success) throw new Error(`deno bench failed with exit code ${run.code}`);
  return { text, counts };
}

/**
 * Joins several `deno bench --json` outputs (one per bench file, say) into
 * one report, in order. The runtime and CPU are the first one's.
 */
export function mergeReports(reports: readonly BenchReport[]): BenchReport {
  if (reports.length === 0) throw new RangeError("mergeReports: no report to merge");
  return { ...reports[0], benches: reports.flatMap((report) => report.benches) };
}

/** Options of the command line, with the positional arguments apart. */
export interface ReportArgs {
  /** `--run`: run the benches first. */
  run: boolean;
  /** `--cores N`: the core count of the machine that ran the benches. */
  cores?: number;
  /** `--counts TEXT`: the worker counts that run used, as "NAME=value, …". */
  counts?: string;
  /** Inputs (comma-separated in the first argument), then the output directory. */
  positional: string[];
}

/** Parses the command line of `bench/report.ts`. */
export function parseReportArgs(args: readonly string[]): ReportArgs {
  const parsed: ReportArgs = { run: false, positional: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--run") parsed.run = true;
    else if (arg === "--cores" || arg === "--counts") {
      const value = args[++i];
      if (value === undefined) throw new TypeError(`report.ts: ${arg} needs a value`);
      if (arg === "--counts") parsed.counts = value;
      else {
        const cores = Number(value);
        if (!Number.isInteger(cores) || cores < 1) {
          throw new RangeError(`report.ts: --cores takes a positive integer, got "${value}"`);
        }
        parsed.cores = cores;
      }
    } else parsed.positional.push(arg);
  }
  return parsed;
}

if (import.meta.main) {
  // `--run` runs the benches first (deno task bench:report); otherwise the
  // first argument names existing `deno bench --json` outputs, comma-separated.
  // `--cores` and `--counts` describe a run taken on another machine.
  const args = parseReportArgs(Deno.args);
  const input = args.positional[0] ?? "bench/results.json";
  let report: BenchReport;
  let counts = args.counts ?? "";
  if (args.run) {
    const ran = await runBenches(input);
    report = parseBenchOutput(ran.text);
    counts = args.counts ?? ran.counts;
  } else {
    const texts = await Promise.all(input.split(",").map((path) => Deno.readTextFile(path)));
    report = mergeReports(texts.map(parseBenchOutput));
  }
  // An optional second argument names the output directory (default: bench/).
  const outdir = args.positional[1];
  const dir = outdir === undefined
    ? new URL("./", import.meta.url)
    : new URL(`${outdir.replace(/\/*$/, "/")}`, `file://${Deno.cwd()}/`);
  const machine = currentMachine(report);
  if (args.cores !== undefined) machine.cores = args.cores;
  const written = await writeReport(report, machine, dir, counts);
  for (const path of written) console.log(`wrote ${path.replace(/^.*\/bench\//, "bench/")}`);
}
