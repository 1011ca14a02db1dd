import { parseFlags, runDemo } from "./demo.ts";
import { logLine, parseWords, percentiles } from "./_demo_log.ts";

Deno.test("demo: 2 workers for 1 s keep every invariant", async () => {
  const result = await runDemo({ workers: 2, seconds: 1, quiet: true });
  const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  if (!result.ok) throw new Error(`invariants failed:\n${failed.join("\n")}`);
  const names = result.checks.map((c) => c.name).join();
  if (names !== "workers,SeqCell,HashMap,BPlusTree,STM,Mutex") {
    throw new Error(`unexpected checks: ${names}`);
  }
  const { totals } = result;
  if (totals.lines <= 0 || totals.words < 5 * totals.lines) {
    throw new Error(`too little work: ${totals.lines} lines, ${totals.words} words`);
  }
  if (totals.transfers <= 0 || totals.errors <= 0 || totals.queries <= 0) {
    throw new Error(`a structure was not used: ${JSON.stringify(totals)}`);
  }
  for (const [name, rate] of Object.entries(result.opsPerSecond)) {
    if (!(rate > 0)) throw new Error(`no throughput for ${name}`);
  }
});

Deno.test("demo: one worker works too", async () => {
  const result = await runDemo({ workers: 1, seconds: 0.3, quiet: true });
  if (!result.ok) throw new Error(JSON.stringify(result.checks));
});

Deno.test("demo: the log is deterministic and parses back", () => {
  for (let id = 0; id < 1000; id++) {
    const line = logLine(id);
    if (line !== logLine(id)) throw new Error("logLine is not deterministic");
    const words = line.split(" ");
    if (words.length !== 5) throw new Error(`line ${id} has ${words.length} words: ${line}`);
    const record = parseWords(words);
    if (
      `${record.method} ${record.path} user=${record.user} ${record.status} ${record.latency}ms` !==
        line
    ) {
      throw new Error(`line ${id} does not parse back: ${line}`);
    }
  }
});

Deno.test("demo: percentiles and flags", () => {
  const histogram = new Uint32Array(100);
  for (let ms = 1; ms <= 100; ms++) histogram[ms - 1] = 1; // 0..99, once each
  const { p50, p99 } = percentiles(histogram, 100);
  if (p50 !== 49 || p99 !== 98) throw new Error(`p50 ${p50}, p99 ${p99}`);
  const flags = parseFlags(["--workers", "3", "--seconds", "0.5"]);
  if (flags.workers !== 3 || flags.seconds !== 0.5) throw new Error(JSON.stringify(flags));
  const defaults = parseFlags([]);
  if (defaults.workers !== 4 || defaults.seconds !== 5) throw new Error(JSON.stringify(defaults));
  let threw = false;
  try {
    parseFlags(["--workers", "1.5"]);
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("--workers 1.5 was accepted");
});
