/**
 * Seqlock benches: reading a small record (four Int32 fields) through each
 * sabre primitive that can guard it, in one thread and with readers and a
 * writer in workers. The baseline of every group is an RwLock read
 * (acquireRead, plain reads, releaseRead).
 *
 * - Uncontended: 1000 reads per iteration on the main thread; and 1000
 *   writes, nobody waiting, against an RwLock write.
 * - Contended: R reader workers (each `SABRE_BENCH_READERS` count, default
 *   2) read 50 000 times each per batch while one more worker writes the
 *   record: at 100 Hz (it sleeps 10 ms between writes, parked on a word
 *   only the parent notifies), or as fast as it can. Only the readers are
 *   measured: the `(xN)` is R × 50 000 reads. Every read is checked for
 *   tearing (the writer stores `v, v+1, v+2, v+3`), so a broken primitive
 *   fails its bench. Left out under `--v8-flags=--harmony-struct`, with
 *   which Deno 2.9.6 crashes when it runs workers.
 *
 * With R workers plus a writer, the readers of a seqlock write nothing to
 * shared memory, while RwLock readers all update its state word, so the
 * cache line that holds it moves between cores on every read.
 *
 * Run: `deno bench --allow-read --allow-env bench/seqlock_bench.ts`
 *
 * @module
 */

// First: it captures Atomics.waitAsync before `multithreading` replaces it.
import { ContentionSuite, sharedStructsEnabled, workerCounts } from "./_contention.ts";
import {
  createRecords,
  RECORD_READS,
  type RecordRead,
  recordReaders,
  recordScenario,
  recordWriters,
} from "./_contention_workers.ts";

export const BATCH = 1000;
/** Reads per reader worker per contended batch. */
export const CONTENDED_READS = 50_000;

// ---------------------------------------------------------------- uncontended

const { objects, args } = createRecords();
const readers = recordReaders(objects);

for (const read of RECORD_READS) {
  const reader = readers[read];
  Deno.bench({
    name: `${read} (x${BATCH})`,
    group: "record read, uncontended",
    baseline: read === RECORD_READS[0],
    fn() {
      const torn = reader(BATCH);
      if (torn !== 0) throw new Error(`${read}: ${torn} torn reads`);
    },
  });
}

// ------------------------------------------------------ uncontended writes
// A write with nobody waiting: what a writer pays besides its stores.

const writers = recordWriters(objects);
const WRITES: [string, RecordRead][] = [
  [
    "RwLock acquireWrite, plain writes, releaseWrite",
    "RwLock acquireRead, plain reads, releaseRead",
  ],
  ["SeqLock beginWrite, Atomics stores, endWrite", "SeqLock.read(fn), Atomics loads"],
  ["SeqCell.write(record)", "SeqCell.read()"],
  ["HybridLatch exclusive, Atomics stores, unlock", "HybridLatch.read(fn), Atomics loads"],
  ["Mutex acquire, plain writes, release", "Mutex acquire, plain reads, release"],
];
let written = 0;
for (const [name, key] of WRITES) {
  const write = writers[key];
  Deno.bench({
    name: `${name} (x${BATCH})`,
    group: "record write, uncontended",
    baseline: key === RECORD_READS[0],
    fn() {
      for (let i = 0; i < BATCH; i++) write(written++ & 0xffff);
    },
  });
}

// ---------------------------------------------------------------- contended
// Left out under --harmony-struct (see `sharedStructsEnabled`).

const readerSets = sharedStructsEnabled() ? [] : workerCounts("SABRE_BENCH_READERS", [2]);
for (const readerCount of readerSets) {
  const suite = await ContentionSuite.start({
    module: new URL("./_contention_workers.ts", import.meta.url),
    setup: "recordScenarios",
    workers: readerCount + 1,
    args,
  });
  const r = `${readerCount} reader${readerCount === 1 ? "" : "s"}`;
  for (const writer of ["slow", "fast"] as const) {
    const group = `record read, ${r} + writer ${writer === "slow" ? "at 100 Hz" : "flat out"}`;
    for (const read of RECORD_READS) {
      suite.bench({
        name: `${read}; ${r}, ${writer} writer`,
        group,
        baseline: read === RECORD_READS[0],
        scenario: recordScenario(read, writer),
        ops: CONTENDED_READS,
        measured: readerCount,
      });
    }
  }
}
