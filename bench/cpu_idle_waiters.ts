/**
 * How much CPU blocked waiters burn: 8 workers block on something the main
 * thread holds for 1 s (a Mutex, an RwLock writer, a Condvar condition, a
 * SeqLock write section, a HybridLatch exclusive holder), and the process's
 * CPU time over that second is printed as a percentage of one core. A naive
 * spin lock and the `multithreading` Mutex are measured the same way for
 * contrast. The design goal for sabre is under 5% of one core; this script
 * reports and asserts nothing (timings never fail a run).
 *
 * SeqCell readers wait for a writer with the same code as SeqLock readers,
 * so the SeqLock line stands for both.
 *
 * CPU time comes from `Deno.cpuUsage()` (the whole process, every worker
 * thread included), or from `/proc/self/stat` where that is missing; with
 * neither, the column reads "n/a".
 *
 * Run: `deno run --allow-read --allow-env bench/cpu_idle_waiters.ts`
 *
 * @module
 */

// First: it captures Atomics.waitAsync before `multithreading` replaces it.
import { ContentionSuite } from "./_contention.ts";
import {
  type Wait,
  WAITER_WORD,
  WAITER_WORDS_BYTES,
  type WaiterArgs,
  WAITS,
} from "./_contention_workers.ts";
import { Mutex as PeerMutex, type MutexGuard as PeerMutexGuard } from "multithreading";
import { Condvar, type ExclusiveGuard, HybridLatch, Mutex, RwLock } from "../latch/mod.ts";
import { SeqLock } from "../seqlock/mod.ts";

const WAITERS = 8;
const HOLD_MS = 1000;
/** Clock ticks per second of /proc/self/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** Process CPU time (user + system) in microseconds, and how it was read. */
function cpuTime(): { micros: number; source: string } | undefined {
  const usage = (Deno as unknown as { cpuUsage?: () => { user: number; system: number } })
    .cpuUsage;
  if (typeof usage === "function") {
    try {
      const { user, system } = usage();
      return { micros: user + system, source: "Deno.cpuUsage()" };
    } catch {
      // fall through to /proc
    }
  }
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (!Number.isFinite(ticks)) return undefined;
    return { micros: (ticks * 1e6) / USER_HZ, source: `/proc/self/stat (${USER_HZ} Hz ticks)` };
  } catch {
    return undefined;
  }
}

/** Parks the main thread (no CPU) for `ms` milliseconds. */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const words = new Int32Array(new SharedArrayBuffer(WAITER_WORDS_BYTES));
const mutex = Mutex.create();
const rwLock = RwLock.create();
const condvar = Condvar.create();
const condvarMutex = Mutex.create();
const seqLock = SeqLock.create();
const hybrid = HybridLatch.create();
const peerBuffer = new SharedArrayBuffer(4);
const peer = new PeerMutex(undefined, peerBuffer);
let peerGuard: PeerMutexGuard<void> | undefined;
let exclusive: ExclusiveGuard | undefined;

/** What the main thread takes before the waiters start, and gives back after the second. */
const holds: Record<Wait, { take(): void; give(): void }> = {
  "sabre Mutex.acquire()": { take: () => mutex.acquire(), give: () => mutex.release() },
  "sabre RwLock.acquireWrite() behind a writer": {
    take: () => rwLock.acquireWrite(),
    give: () => rwLock.releaseWrite(),
  },
  "sabre RwLock.acquireRead() behind a writer": {
    take: () => rwLock.acquireWrite(),
    give: () => rwLock.releaseWrite(),
  },
  "sabre Condvar.waitWhile()": {
    take: () => Atomics.store(words, WAITER_WORD.ready, 0),
    give: () => {
      condvarMutex.acquire();
      Atomics.store(words, WAITER_WORD.ready, 1);
      condvar.notifyAll();
      condvarMutex.release();
    },
  },
  "sabre SeqLock.read(fn) behind a writer": {
    take: () => seqLock.beginWrite(),
    give: () => seqLock.endWrite(),
  },
  "sabre SeqLock.beginWrite() behind a writer": {
    take: () => seqLock.beginWrite(),
    give: () => seqLock.endWrite(),
  },
  "sabre HybridLatch.read(fn) behind an exclusive holder": {
    take: () => void (exclusive = hybrid.exclusive()),
    give: () => void exclusive?.unlock(),
  },
  "multithreading Mutex.blockingLock()": {
    take: () => void (peerGuard = peer.blockingLock()),
    give: () => peerGuard?.dispose(),
  },
  "naive spin lock (contrast)": {
    take: () => Atomics.store(words, WAITER_WORD.spin, 1),
    give: () => Atomics.store(words, WAITER_WORD.spin, 0),
  },
};

const args: WaiterArgs = {
  mutex: mutex.handle,
  rwLock: rwLock.handle,
  condvar: condvar.handle,
  condvarMutex: condvarMutex.handle,
  seqLock: seqLock.handle,
  hybrid: hybrid.handle,
  peer: peerBuffer,
  words: words.buffer as SharedArrayBuffer,
};

const suite = await ContentionSuite.start({
  module: new URL("./_contention_workers.ts", import.meta.url),
  setup: "waiterScenarios",
  workers: WAITERS,
  args,
  closeOnUnload: false,
});

let source = "none";
const rows: Array<[string, string]> = [];
try {
  // Warm up: one pass through every scenario with nothing held.
  for (const wait of WAITS) {
    holds[wait].take();
    holds[wait].give();
    suite.runBatch(wait, 1);
  }
  for (const wait of WAITS) {
    const hold = holds[wait];
    Atomics.store(words, WAITER_WORD.arrived, 0);
    hold.take();
    suite.startBatch(wait, 1);
    // Start the window once every waiter is about to block.
    for (let seen; (seen = Atomics.load(words, WAITER_WORD.arrived)) < WAITERS;) {
      Atomics.wait(words, WAITER_WORD.arrived, seen, 10);
    }
    const before = cpuTime();
    const start = performance.now();
    sleep(HOLD_MS);
    const after = cpuTime();
    const elapsed = performance.now() - start;
    hold.give();
    suite.finishBatch();
    if (before === undefined || after === undefined) {
      rows.push([wait, "n/a"]);
    } else {
      source = after.source;
      const percent = ((after.micros - before.micros) / 1000 / elapsed) * 100;
      rows.push([wait, `${percent.toFixed(percent < 10 ? 2 : 1)}%`]);
    }
  }
} finally {
  await suite.close();
}

const width = Math.max(...rows.map(([name]) => name.length));
console.log(
  `${WAITERS} workers blocked for ${HOLD_MS} ms on ${navigator.hardwareConcurrency} cores; ` +
    `process CPU time as % of one core (from ${source}); goal for sabre: under 5%`,
);
for (const [name, value] of rows) console.log(`  ${name.padEnd(width)}  ${value.padStart(7)}`);
