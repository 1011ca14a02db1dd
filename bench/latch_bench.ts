/**
 * Latch benches: Mutex and RwLock lock+unlock in one thread, in every form
 * (acquire/release, guard, `using`, callback), against a textbook futex
 * mutex, the `multithreading` package and V8's experimental `Atomics.Mutex`;
 * then a contended Mutex in W workers.
 *
 * Every bench runs a batch and its name ends in `(xN)`, N operations per
 * iteration; `deno task bench:report` divides. Ratios against each group's
 * baseline are per operation already.
 *
 * - Uncontended groups: 1000 lock+unlock pairs per iteration on the main
 *   thread. The baseline of each is the textbook three-state futex mutex
 *   (`TextbookMutex` in `_contention_workers.ts`, shared with the workers),
 *   so the RwLock groups read as "cost of a read (or write) lock against a
 *   plain mutex".
 * - Contended groups: W workers (each `SABRE_BENCH_WORKERS` count, default
 *   1 and 2) each lock, increment a plain shared counter and unlock, a batch
 *   of 20 000 times; the counter is checked after every batch. The
 *   "contention harness" groups give the fixed cost of one batch round trip
 *   to read the others against.
 *
 * `Atomics.Mutex` exists only under `--v8-flags=--harmony-struct`; without
 * the flag its bench is left out. Under the flag the contended groups are
 * left out instead, since Deno 2.9.6 crashes with workers then (and Deno
 * cannot send an `Atomics.Mutex` to a worker anyway). So a full picture
 * takes two runs:
 *
 * - `deno bench --allow-read --allow-env bench/latch_bench.ts`
 * - `deno bench --allow-read --allow-env --v8-flags=--harmony-struct bench/latch_bench.ts`
 *
 * @module
 */

// First: it captures Atomics.waitAsync before `multithreading` replaces it.
import { ContentionSuite, sharedStructsEnabled, workerCounts } from "./_contention.ts";
import { COUNTER, COUNTER_BYTES, type CounterArgs, TextbookMutex } from "./_contention_workers.ts";
import { Mutex as PeerMutex, RwLock as PeerRwLock } from "multithreading";
import { Mutex, RwLock } from "../latch/mod.ts";

export const BATCH = 1000;
/** Lock+unlock pairs per worker per contended batch. */
export const CONTENDED_OPS = 20_000;

/** V8's `Atomics.Mutex` (behind `--harmony-struct`), as far as these benches use it. */
interface V8MutexConstructor {
  new (): object;
  lock<T>(mutex: object, fn: () => T): T;
}
const V8Mutex = (Atomics as unknown as { Mutex?: V8MutexConstructor }).Mutex;

let sink = 0;

// ---------------------------------------------------------------- uncontended

const textbook = new TextbookMutex(new Int32Array(new SharedArrayBuffer(4)), 0);
const mutex = Mutex.create();
const rwLock = RwLock.create();
const peerMutex = new PeerMutex();
const peerRwLock = new PeerRwLock();
const bump = () => {
  sink++;
};

function textbookBaseline(group: string): void {
  Deno.bench({
    name: `textbook futex mutex lock+unlock (x${BATCH})`,
    group,
    baseline: true,
    fn() {
      for (let i = 0; i < BATCH; i++) {
        textbook.lock();
        textbook.unlock();
      }
    },
  });
}

const MUTEX = "mutex uncontended";
textbookBaseline(MUTEX);

Deno.bench({
  name: `sabre Mutex acquire()+release() (x${BATCH})`,
  group: MUTEX,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      mutex.acquire();
      mutex.release();
    }
  },
});

Deno.bench({
  name: `sabre Mutex lock()+guard.unlock() (x${BATCH})`,
  group: MUTEX,
  fn() {
    for (let i = 0; i < BATCH; i++) mutex.lock().unlock();
  },
});

Deno.bench({
  name: `sabre Mutex using lock() (x${BATCH})`,
  group: MUTEX,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      using _guard = mutex.lock();
    }
  },
});

Deno.bench({
  name: `sabre Mutex withLock(fn) (x${BATCH})`,
  group: MUTEX,
  fn() {
    for (let i = 0; i < BATCH; i++) mutex.withLock(bump);
  },
});

Deno.bench({
  name: `multithreading Mutex blockingLock()+guard.dispose() (x${BATCH})`,
  group: MUTEX,
  fn() {
    for (let i = 0; i < BATCH; i++) peerMutex.blockingLock().dispose();
  },
});

if (V8Mutex !== undefined) {
  const v8Mutex = new V8Mutex();
  Deno.bench({
    name: `V8 Atomics.Mutex.lock(m, fn) (x${BATCH})`,
    group: MUTEX,
    fn() {
      for (let i = 0; i < BATCH; i++) V8Mutex.lock(v8Mutex, bump);
    },
  });
}

const READ = "rwlock read uncontended";
textbookBaseline(READ);

Deno.bench({
  name: `sabre RwLock acquireRead()+releaseRead() (x${BATCH})`,
  group: READ,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      rwLock.acquireRead();
      rwLock.releaseRead();
    }
  },
});

Deno.bench({
  name: `sabre RwLock read()+guard.unlock() (x${BATCH})`,
  group: READ,
  fn() {
    for (let i = 0; i < BATCH; i++) rwLock.read().unlock();
  },
});

Deno.bench({
  name: `sabre RwLock using read() (x${BATCH})`,
  group: READ,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      using _guard = rwLock.read();
    }
  },
});

Deno.bench({
  name: `sabre RwLock withRead(fn) (x${BATCH})`,
  group: READ,
  fn() {
    for (let i = 0; i < BATCH; i++) rwLock.withRead(bump);
  },
});

Deno.bench({
  name: `multithreading RwLock blockingRead()+guard.dispose() (x${BATCH})`,
  group: READ,
  fn() {
    for (let i = 0; i < BATCH; i++) peerRwLock.blockingRead().dispose();
  },
});

const WRITE = "rwlock write uncontended";
textbookBaseline(WRITE);

Deno.bench({
  name: `sabre RwLock acquireWrite()+releaseWrite() (x${BATCH})`,
  group: WRITE,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      rwLock.acquireWrite();
      rwLock.releaseWrite();
    }
  },
});

Deno.bench({
  name: `sabre RwLock write()+guard.unlock() (x${BATCH})`,
  group: WRITE,
  fn() {
    for (let i = 0; i < BATCH; i++) rwLock.write().unlock();
  },
});

Deno.bench({
  name: `sabre RwLock using write() (x${BATCH})`,
  group: WRITE,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      using _guard = rwLock.write();
    }
  },
});

Deno.bench({
  name: `sabre RwLock withWrite(fn) (x${BATCH})`,
  group: WRITE,
  fn() {
    for (let i = 0; i < BATCH; i++) rwLock.withWrite(bump);
  },
});

Deno.bench({
  name: `multithreading RwLock blockingWrite()+guard.dispose() (x${BATCH})`,
  group: WRITE,
  fn() {
    for (let i = 0; i < BATCH; i++) peerRwLock.blockingWrite().dispose();
  },
});

// ---------------------------------------------------------------- contended
// Left out under --harmony-struct (see `sharedStructsEnabled`).

const SCENARIOS = [
  { name: "textbook futex mutex", counter: COUNTER.textbook, baseline: true },
  { name: "sabre Mutex acquire/release", counter: COUNTER.sabre, baseline: false },
  { name: "multithreading Mutex", counter: COUNTER.peer, baseline: false },
] as const;

const workerSets = sharedStructsEnabled() ? [] : workerCounts("SABRE_BENCH_WORKERS", [1, 2]);
for (const workers of workerSets) {
  const counters = new Int32Array(new SharedArrayBuffer(COUNTER_BYTES));
  const args: CounterArgs = {
    sabre: Mutex.create().handle,
    textbook: new SharedArrayBuffer(4),
    peer: new SharedArrayBuffer(4),
    counters: counters.buffer as SharedArrayBuffer,
  };
  const suite = await ContentionSuite.start({
    module: new URL("./_contention_workers.ts", import.meta.url),
    setup: "counterScenarios",
    workers,
    args,
  });
  const w = `${workers} worker${workers === 1 ? "" : "s"}`;
  suite.benchOverhead(`contention harness, ${w}`, "empty");
  for (const scenario of SCENARIOS) {
    const expected = workers * CONTENDED_OPS;
    suite.bench({
      name: `${scenario.name}: lock, counter++, unlock; ${w}`,
      group: `mutex contended, ${w}`,
      baseline: scenario.baseline,
      scenario: scenario.name,
      ops: CONTENDED_OPS,
      before() {
        counters[scenario.counter] = 0;
      },
      after() {
        // The workers' DONE increments are Atomics, so their plain counter
        // writes happen-before this read.
        const seen = counters[scenario.counter];
        if (seen !== expected) {
          throw new Error(
            `${scenario.name} lost updates: the counter is ${seen} after ${expected} increments`,
          );
        }
      },
    });
  }
}

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
