/**
 * `deno task demo`: N workers ingest one generated access log together,
 * sharing five sabre structures in one SharedHeap, without copying anything
 * through `postMessage`:
 *
 * - a **HashMap** counts every word of every line (`add(word, 1)`);
 * - a **BPlusTree** indexes request id → latency over a sliding window, and
 *   workers scan its latest entries for latency percentiles;
 * - **STM** accounts (`Loc`s): each purchase moves credits from buyer to
 *   seller with a fee to the platform in one `Xt.commit`;
 * - a **SeqCell** per worker publishes its progress, which the main thread
 *   reads for the progress bar;
 * - a **Mutex** guards a shared ring log of server errors.
 *
 * At the end the main thread checks the invariants (counts add up, the index
 * is ordered and matches the log, money is conserved, the error log is
 * intact) and exits non-zero if one fails.
 *
 * Flags: `--workers N` (default 4), `--seconds S` (default 5).
 *
 * @module
 */

import { BPlusTree, HashMap, Loc, Mutex, SeqCell, SharedHeap } from "../mod.ts";
import {
  CONTROL,
  type DemoJob,
  type DemoReply,
  ERROR_LOG_CAPACITY,
  ERROR_WORDS,
  errorCheck,
  INITIAL_BALANCE,
  logLine,
  parseWords,
  percentiles,
  type Progress,
  PROGRESS_SCHEMA,
  QUERY_SPAN,
  USERS,
  WINDOW,
} from "./_demo_log.ts";

export type { Progress } from "./_demo_log.ts";

/** Options of {@linkcode runDemo}. */
export interface DemoOptions {
  /** Workers to start (default 4). */
  workers?: number;
  /** Seconds of work after every worker is ready (default 5). */
  seconds?: number;
  /** Print nothing (default false). */
  quiet?: boolean;
  /** Redraw the progress bar in place (default: whether stdout is a terminal). */
  tty?: boolean;
}

/** One invariant checked at the end of {@linkcode runDemo}. */
export interface DemoCheck {
  /** The structure it is about. */
  name: string;
  /** Whether it held. */
  ok: boolean;
  /** What was compared. */
  detail: string;
}

/** What {@linkcode runDemo} measured and checked. */
export interface DemoResult {
  /** Workers that ran. */
  workers: number;
  /** Seconds from the start signal until every worker had finished. */
  seconds: number;
  /** Every worker's final progress, summed (p50/p99: those of the final scan by the main thread). */
  totals: Progress;
  /** Entries in the BPlusTree at the end. */
  treeSize: number;
  /** Operations per second by structure. */
  opsPerSecond: Record<"hashmap" | "btree" | "stm" | "seqcell" | "mutex", number>;
  /** The invariants, in the order printed. */
  checks: DemoCheck[];
  /** True when every check held and every worker finished cleanly. */
  ok: boolean;
}

const encoder = new TextEncoder();
const BAR_WIDTH = 40;

/** 1234567 → "1,234,567". */
function grouped(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** 1234567 → "1.23M"; 4321 → "4.32k". */
function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toPrecision(3)}G`;
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (n >= 1e4) return `${(n / 1e3).toPrecision(3)}k`;
  return grouped(n);
}

function emptyProgress(): Progress {
  const p = {} as Progress;
  for (const key of Object.keys(PROGRESS_SCHEMA) as (keyof Progress)[]) p[key] = 0;
  return p;
}

function sum(records: readonly Progress[]): Progress {
  const total = emptyProgress();
  for (const record of records) {
    for (const key of Object.keys(total) as (keyof Progress)[]) {
      if (key !== "p50" && key !== "p99") total[key] += record[key];
    }
  }
  return total;
}

/** The progress bar line, without `\r`. */
function progressLine(elapsed: number, seconds: number, p: Progress, rate: number): string {
  const fraction = Math.min(1, elapsed / seconds);
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
  const time = `${Math.min(elapsed, seconds).toFixed(1)}/${seconds.toFixed(1)} s`;
  const p99 = p.p99 > 0 ? `  p99 ${p.p99} ms` : "";
  return `[${bar}] ${time.padStart(11)}  ${grouped(p.lines).padStart(11)} lines  ${
    compact(rate).padStart(6)
  } lines/s${p99}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs the demo: starts `workers` workers on one heap, lets them ingest the
 * log for `seconds`, then checks the invariants. Prints a progress bar and a
 * summary unless `quiet`. Never exits the process; see `ok` in the result.
 *
 * @example
 * ```ts ignore
 * import { runDemo } from "./examples/demo.ts";
 * const result = await runDemo({ workers: 2, seconds: 1, quiet: true });
 * console.assert(result.ok);
 * ```
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const workerCount = options.workers ?? 4;
  const seconds = options.seconds ?? 5;
  if (!Number.isInteger(workerCount) || workerCount < 1 || workerCount > 60) {
    throw new RangeError(`Cannot run the demo as 'workers' must be an integer from 1 to 60`);
  }
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new RangeError(`Cannot run the demo as 'seconds' must be a number in (0, 3600]`);
  }
  const quiet = options.quiet ?? false;
  const tty = options.tty ?? Deno.stdout.isTerminal();
  const write = (text: string) => {
    if (!quiet) Deno.stdout.writeSync(encoder.encode(text));
  };
  const print = (text = "") => write(text + "\n");

  // Everything shared lives in one heap, except two small standalone buffers.
  const heap = SharedHeap.create({ initialBytes: 4 << 20, maxBytes: 512 << 20 });
  const counts = HashMap.create(heap, { key: "string", value: "u32", capacity: 4096 });
  const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
  const accounts = Loc.makeArray(heap, USERS, INITIAL_BALANCE, { kind: "i32" });
  accounts.push(Loc.make(heap, 0, { kind: "i32" })); // the platform's account
  const cells = Array.from(
    { length: workerCount },
    () => SeqCell.create(PROGRESS_SCHEMA, { heap }),
  );
  const mutex = Mutex.create(heap);
  const control = new Int32Array(new SharedArrayBuffer(4 * CONTROL.length));
  const errorLog = new Int32Array(
    new SharedArrayBuffer(4 * (1 + ERROR_LOG_CAPACITY * ERROR_WORDS)),
  );

  print(
    `sabre demo: ${workerCount} worker${workerCount === 1 ? "" : "s"} ingest a generated ` +
      `access log for ${seconds} s, sharing one SharedHeap (${navigator.hardwareConcurrency} cores)`,
  );
  print(`  e.g. "${logLine(42)}"`);
  print("  HashMap    word → count, add(word, 1) for every word");
  print(`  BPlusTree  request id → latency, the latest ${grouped(WINDOW)}; p50/p99 by scans`);
  print(`  STM        ${USERS} user accounts + the platform; purchases are Xt.commit transfers`);
  print("  SeqCell    one per worker: progress, read here for the bar");
  print("  Mutex      guards a shared ring log of 5xx errors");
  print();

  // Start the workers and wait until each has attached everything.
  const workers: Worker[] = [];
  const replies: Promise<DemoReply>[] = [];
  for (let index = 0; index < workerCount; index++) {
    const worker = new Worker(new URL("./_demo_worker.ts", import.meta.url).href, {
      type: "module",
    });
    workers.push(worker);
    replies.push(
      new Promise<DemoReply>((resolve) => {
        worker.onmessage = (e: MessageEvent<DemoReply>) => resolve(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          resolve({ ok: false, error: e.message });
        };
      }),
    );
    worker.postMessage(
      {
        index,
        heap: heap.handle,
        counts: counts.handle,
        tree: tree.handle,
        accounts: accounts.map((a) => a.handle),
        progress: cells[index].handle,
        mutex: mutex.handle,
        control: control.buffer as SharedArrayBuffer,
        errorLog: errorLog.buffer as SharedArrayBuffer,
      } satisfies DemoJob,
    );
  }
  let failed: string | undefined;
  for (const reply of replies) {
    reply.then((r) => {
      if (!r.ok) failed ??= r.error;
    });
  }
  const readyBy = performance.now() + 60_000;
  while (Atomics.load(control, CONTROL.ready) < workerCount && failed === undefined) {
    if (performance.now() > readyBy) failed = "workers did not start within 60 s";
    await sleep(10);
  }

  // Go: the bar reads every worker's SeqCell; nothing else crosses threads.
  const started = performance.now();
  Atomics.store(control, CONTROL.go, 1);
  Atomics.notify(control, CONTROL.go);
  let cellReads = 0;
  const snapshot = () => {
    cellReads += cells.length;
    const records = cells.map((cell) => cell.read());
    const total = sum(records);
    total.p99 = Math.max(...records.map((r) => r.p99));
    return total;
  };
  const every = Math.max(1, Math.round(seconds / 10)); // non-TTY: about ten lines at most
  let nextLine = every;
  while (failed === undefined) {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed >= seconds) break;
    const now = snapshot();
    const line = progressLine(elapsed, seconds, now, now.lines / Math.max(elapsed, 1e-3));
    if (tty) write(`\r${line}\x1b[K`);
    else if (elapsed >= nextLine) {
      print(line);
      nextLine += every;
    }
    await sleep(tty ? 100 : 50);
  }
  Atomics.store(control, CONTROL.stop, 1);
  Atomics.notify(control, CONTROL.go); // in case a worker still waits to start
  const results = await Promise.all(replies);
  const elapsed = (performance.now() - started) / 1000;
  for (const worker of workers) worker.terminate();
  {
    const now = snapshot();
    const line = progressLine(seconds, seconds, now, now.lines / elapsed);
    if (tty) write(`\r${line}\x1b[K\n`);
    else print(line);
  }
  print();

  // ------------------------------------------------------------- the checks
  const checks: DemoCheck[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const finals = results.flatMap((r) => r.ok ? [r.progress] : []);
  const errors = results.flatMap((r) => r.ok ? [] : [r.error]);
  check(
    "workers",
    errors.length === 0 && failed === undefined,
    errors.length === 0 && failed === undefined
      ? `all ${workerCount} finished and closed the heap`
      : `failed: ${failed ?? errors[0]}`,
  );
  const totals = sum(finals);

  // SeqCell: each worker's last published record is exactly what it returned.
  const published = cells.map((cell) => cell.read());
  const sameRecord = finals.length === workerCount &&
    finals.every((f, i) =>
      (Object.keys(f) as (keyof Progress)[]).every((key) => published[i][key] === f[key])
    );
  check(
    "SeqCell",
    sameRecord,
    `each worker's last record read here = its final tally`,
  );

  // HashMap: the counts add up to the words read; one user= word per line.
  let countSum = 0;
  let userSum = 0;
  const statuses = new Map<string, number>();
  const paths: [string, number][] = [];
  for (const [word, n] of counts) {
    countSum += n;
    if (word.startsWith("user=")) userSum += n;
    if (/^[1-5]\d\d$/.test(word)) statuses.set(word, n);
    if (word.startsWith("/")) paths.push([word, n]);
  }
  const claimed = Atomics.load(control, CONTROL.next);
  const same = (label: string, a: number, b: number) =>
    a === b ? `${label} (${grouped(a)})` : `${label}: ${grouped(a)} ≠ ${grouped(b)}`;
  check(
    "HashMap",
    countSum === totals.words && userSum === totals.lines && totals.lines === claimed,
    [
      same("Σ counts = words read", countSum, totals.words),
      same("Σ user=* = lines read", userSum, totals.lines),
      ...(totals.lines === claimed
        ? []
        : [same("lines read = ids claimed", totals.lines, claimed)]),
    ].join("; "),
  );

  // BPlusTree: size = inserted - deleted, keys ascending, values match the log.
  let seen = 0;
  let previous = -1;
  let ordered = true;
  let matching = true;
  for (const [id, latency] of tree) {
    seen++;
    if (id <= previous) ordered = false;
    previous = id;
    if (parseWords(logLine(id).split(" ")).latency !== latency) matching = false;
  }
  const treeSize = tree.size;
  check(
    "BPlusTree",
    treeSize === totals.inserts - totals.deletes && seen === treeSize && ordered && matching &&
      totals.inserts === totals.lines,
    `${grouped(treeSize)} keys = ${grouped(totals.inserts)} inserted − ${
      grouped(totals.deletes)
    } deleted; ${ordered ? "ascending" : "OUT OF ORDER"}; values ${
      matching ? "match" : "DO NOT match"
    } the log`,
  );

  // STM: money is conserved and nobody is overdrawn.
  const balances = accounts.map((a) => a.get());
  const balanceSum = balances.reduce((s, b) => s + b, 0);
  const expected = USERS * INITIAL_BALANCE;
  check(
    "STM",
    balanceSum === expected && balances.every((b) => b >= 0),
    `Σ balances ${grouped(balanceSum)} = ${grouped(expected)} initial; ${
      balances.filter((b) => b < 0).length
    } overdrawn of ${accounts.length}`,
  );

  // Mutex: every error was appended once and the kept entries are whole.
  let logged = 0;
  let intact = true;
  let last: { id: number; worker: number; status: number } | undefined;
  mutex.withLock(() => {
    logged = errorLog[0];
    for (let seq = Math.max(0, logged - ERROR_LOG_CAPACITY); seq < logged; seq++) {
      const at = 1 + (seq % ERROR_LOG_CAPACITY) * ERROR_WORDS;
      const [s, id, worker, status] = errorLog.subarray(at, at + 4);
      if (s !== seq || errorLog[at + 5] !== errorCheck(s, id, worker, status)) intact = false;
      last = { id, worker, status };
    }
  });
  check(
    "Mutex",
    logged === totals.errors && intact,
    `${grouped(logged)} errors appended = ${grouped(totals.errors)} seen; the last ${
      grouped(Math.min(logged, ERROR_LOG_CAPACITY))
    } entries ${intact ? "intact and in sequence" : "TORN"}`,
  );

  // A final query of our own: percentiles over the latest QUERY_SPAN ids.
  const histogram = new Uint32Array(1_024);
  let n = 0;
  tree.scan({ gte: Math.max(0, claimed - QUERY_SPAN) }, (_, latency) => {
    histogram[Math.min(latency, histogram.length - 1)]++;
    n++;
  });
  const { p50, p99 } = percentiles(histogram, n);
  totals.p50 = p50;
  totals.p99 = p99;
  const latest = [...tree.range({ reverse: true, limit: 3 })];

  const perSecond = (ops: number) => ops / elapsed;
  const opsPerSecond = {
    hashmap: perSecond(totals.words),
    btree: perSecond(totals.inserts + totals.deletes + totals.scanned),
    stm: perSecond(totals.transfers + totals.declined + totals.payouts),
    seqcell: perSecond(totals.writes + cellReads),
    mutex: perSecond(totals.errors),
  };
  const ok = checks.every((c) => c.ok);

  // ------------------------------------------------------------ the summary
  print(
    `${grouped(totals.lines)} lines in ${elapsed.toFixed(2)} s: ${
      compact(perSecond(totals.lines))
    } lines/s with ${workerCount} worker${workerCount === 1 ? "" : "s"}`,
  );
  print();
  const rows: [string, string, number, number][] = [
    ["HashMap", "add(word, 1)", totals.words, opsPerSecond.hashmap],
    ["BPlusTree", "insert + delete", totals.inserts + totals.deletes, 0],
    ["", `scan: ${grouped(totals.queries)} p50/p99 queries`, totals.scanned, 0],
    ["STM", "Xt.commit", totals.transfers + totals.declined + totals.payouts, opsPerSecond.stm],
    ["SeqCell", "write (workers) + read (here)", totals.writes + cellReads, opsPerSecond.seqcell],
    ["Mutex", "lock, append, unlock", totals.errors, opsPerSecond.mutex],
  ];
  rows[1][3] = perSecond(rows[1][2]);
  rows[2][3] = perSecond(rows[2][2]);
  print(
    `  ${"structure".padEnd(10)} ${"operation".padEnd(32)} ${"ops".padStart(9)} ${
      "ops/s".padStart(9)
    }`,
  );
  for (const [name, what, ops, rate] of rows) {
    const unit = name === "" ? " entries" : "";
    print(
      `  ${name.padEnd(10)} ${what.padEnd(32)} ${compact(ops).padStart(9)} ${
        compact(rate).padStart(9)
      }${unit}`,
    );
  }
  print("  (rates within the mixed job, over its whole time; not each structure alone)");
  print();
  const share = (n: number) => `${(100 * n / Math.max(1, totals.lines)).toFixed(1)}%`;
  paths.sort((a, b) => b[1] - a[1]);
  print(
    `  top paths    ${paths.slice(0, 4).map(([p, c]) => `${p} ${share(c)}`).join(", ")}`,
  );
  print(
    `  statuses     ${[...statuses].sort().map(([s, c]) => `${s} ${share(c)}`).join(", ")}`,
  );
  print(
    `  payments     ${grouped(totals.transfers)} paid, ${
      grouped(totals.declined)
    } declined (buyer short of credits), ${grouped(totals.payouts)} platform payouts`,
  );
  print(`  latency      p50 ${p50} ms, p99 ${p99} ms over the latest ${grouped(n)} requests`);
  if (last !== undefined) {
    print(
      `  last error   #${last.id} "${logLine(last.id)}" (worker ${last.worker})`,
    );
  }
  print(`  latest       ${latest.map(([id]) => `#${id}`).join(", ")} (tree.range reverse)`);
  print();
  for (const c of checks) print(`  ${c.ok ? "✓" : "✗"} ${c.name.padEnd(10)} ${c.detail}`);
  print();
  print(ok ? "All invariants hold." : "An invariant FAILED.");

  heap.close();
  return { workers: workerCount, seconds: elapsed, totals, treeSize, opsPerSecond, checks, ok };
}

/** Reads `--workers N` and `--seconds S` from command-line arguments. */
export function parseFlags(args: readonly string[]): { workers: number; seconds: number } {
  const flag = (name: string, fallback: number, integer: boolean) => {
    const at = args.indexOf(`--${name}`);
    if (at < 0) return fallback;
    const value = Number(args[at + 1]);
    if (!(value > 0) || (integer && !Number.isInteger(value))) {
      throw new RangeError(
        `Cannot run the demo as '--${name}' must be a positive ${
          integer ? "integer" : "number"
        }: current value is ${args[at + 1]}`,
      );
    }
    return value;
  };
  return { workers: flag("workers", 4, true), seconds: flag("seconds", 5, false) };
}

if (import.meta.main) {
  const result = await runDemo(parseFlags(Deno.args));
  if (!result.ok) Deno.exit(1);
}
