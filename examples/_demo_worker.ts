/**
 * One worker of `deno task demo`: attaches every shared structure from the
 * handles it receives, waits for the start signal, then claims batches of
 * log line ids from a shared cursor and ingests them until told to stop.
 *
 * Per line: each word is counted in the HashMap, the request id is indexed
 * in the BPlusTree (the id `WINDOW` back is deleted), a purchase moves
 * credits between STM accounts, and a 5xx is appended to the error log under
 * the Mutex. Per batch: progress goes out through this worker's SeqCell;
 * every few batches a scan of the tree gives latency percentiles.
 *
 * @module
 */

import { BPlusTree, HashMap, Loc, Mutex, SeqCell, SharedHeap, Xt } from "../mod.ts";
import {
  BATCH,
  CONTROL,
  type DemoJob,
  type DemoReply,
  ERROR_LOG_CAPACITY,
  ERROR_WORDS,
  errorCheck,
  ITEMS,
  logLine,
  mix32,
  parseWords,
  percentiles,
  type Progress,
  type PROGRESS_SCHEMA,
  QUERY_EVERY,
  QUERY_SPAN,
  USERS,
  WINDOW,
} from "./_demo_log.ts";

function run(job: DemoJob): Progress {
  const heap = SharedHeap.attach(job.heap);
  const counts = HashMap.attach<string, number>(job.counts);
  const tree = BPlusTree.attach<number, number>(job.tree);
  const accounts = job.accounts.map((handle) => Loc.attach(handle));
  const platform = accounts[USERS];
  const cell = SeqCell.attach<typeof PROGRESS_SCHEMA>(job.progress);
  const mutex = Mutex.attach(job.mutex);
  const control = new Int32Array(job.control);
  const errorLog = new Int32Array(job.errorLog);

  const p: Progress = {
    lines: 0,
    words: 0,
    inserts: 0,
    deletes: 0,
    queries: 0,
    scanned: 0,
    transfers: 0,
    declined: 0,
    payouts: 0,
    errors: 0,
    writes: 0,
    p50: 0,
    p99: 0,
    done: 0,
  };
  const histogram = new Uint32Array(1_024);
  let scanCount = 0;
  const record = (_: number, latency: number) => {
    histogram[latency < histogram.length ? latency : histogram.length - 1]++;
    scanCount++;
  };

  Atomics.add(control, CONTROL.ready, 1);
  while (Atomics.load(control, CONTROL.go) === 0) Atomics.wait(control, CONTROL.go, 0, 100);

  for (let batch = 0; Atomics.load(control, CONTROL.stop) === 0; batch++) {
    const first = Atomics.add(control, CONTROL.next, BATCH);
    for (let id = first; id < first + BATCH; id++) {
      const words = logLine(id).split(" ");
      // HashMap: a word count, one atomic add per word.
      for (const word of words) counts.add(word, 1);
      p.words += words.length;
      const line = parseWords(words);
      // BPlusTree: request id → latency over a sliding window.
      if (tree.insert(id, line.latency)) p.inserts++;
      if (id >= WINDOW && tree.delete(id - WINDOW) !== undefined) p.deletes++;
      // STM: a bought item moves credits from buyer to seller, with a fee to the platform.
      if (line.item >= 0 && line.status === 200 && line.path.startsWith("/item/")) {
        const buyer = accounts[line.user];
        let sellerIndex = Math.floor((line.item * USERS) / ITEMS); // popular items, busy sellers
        if (sellerIndex === line.user) sellerIndex = (sellerIndex + 1) % USERS;
        const seller = accounts[sellerIndex];
        const price = 2 + (line.item % 9);
        const paid = Xt.commit((xt) => {
          if (xt.get(buyer) < price) return false; // declined: commits nothing
          xt.fetchAndAdd(buyer, -price);
          xt.fetchAndAdd(seller, price - 1);
          xt.fetchAndAdd(platform, 1);
          return true;
        });
        if (paid) p.transfers++;
        else p.declined++;
      }
      // Mutex: server errors go to a shared ring log, several plain words per entry.
      if (line.status >= 500) {
        mutex.acquire();
        try {
          const seq = errorLog[0];
          const at = 1 + (seq % ERROR_LOG_CAPACITY) * ERROR_WORDS;
          errorLog[at] = seq;
          errorLog[at + 1] = id;
          errorLog[at + 2] = job.index;
          errorLog[at + 3] = line.status;
          errorLog[at + 4] = line.item;
          errorLog[at + 5] = errorCheck(seq, id, job.index, line.status);
          errorLog[0] = seq + 1;
        } finally {
          mutex.release();
        }
        p.errors++;
      }
    }
    p.lines += BATCH;
    // STM: the platform pays its takings back to the user of a random line
    // (busy users buy more and get more back), so that money keeps moving.
    const lucky = accounts[parseWords(logLine(first + (mix32(first) % BATCH)).split(" ")).user];
    Xt.commit((xt) => xt.fetchAndAdd(lucky, xt.exchange(platform, 0)));
    p.payouts++;
    // BPlusTree: latency percentiles over the latest QUERY_SPAN requests.
    if (batch % QUERY_EVERY === 0 && first >= QUERY_SPAN) {
      histogram.fill(0);
      scanCount = 0;
      tree.scan({ gte: first - QUERY_SPAN, lt: first }, record);
      const { p50, p99 } = percentiles(histogram, scanCount);
      p.p50 = p50;
      p.p99 = p99;
      p.queries++;
      p.scanned += scanCount;
    }
    // SeqCell: publish progress; the main thread reads it for the progress bar.
    p.writes++;
    cell.write(p);
  }
  p.done = 1;
  p.writes++;
  cell.write(p);
  heap.close();
  return p;
}

const scope = globalThis as unknown as {
  onmessage: (e: MessageEvent<DemoJob>) => void;
  postMessage(message: DemoReply): void;
};
scope.onmessage = (e) => {
  try {
    scope.postMessage({ ok: true, progress: run(e.data) });
  } catch (error) {
    scope.postMessage({
      ok: false,
      error: error instanceof Error ? error.stack ?? error.message : String(error),
    });
  }
};
