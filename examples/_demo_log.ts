/**
 * Shared pieces of `deno task demo`: the generated access log, the layout of
 * the control words and of the Mutex-protected error log, and the message a
 * worker receives. Imported by both `demo.ts` and `_demo_worker.ts`.
 *
 * @module
 */

import type {
  BPlusTreeHandle,
  HashMapHandle,
  LocHandle,
  MutexHandle,
  SeqCellFieldType,
  SeqCellHandle,
  SharedHeapHandle,
} from "../mod.ts";

/** User accounts in the STM bank; one more account (index `USERS`) is the platform's. */
export const USERS = 64;
/** Credits each user account starts with; the platform starts with 0. */
export const INITIAL_BALANCE = 1_000;
/** Items for sale (`/item/N`, `/cart/N`). */
export const ITEMS = 500;
/** The B+ tree keeps the latest `WINDOW` request ids: each insert deletes the id this far back. */
export const WINDOW = 50_000;
/** Log lines a worker claims at once from the shared cursor. */
export const BATCH = 256;
/** A worker runs a percentile scan every this many batches. */
export const QUERY_EVERY = 8;
/** Request ids a percentile scan covers (the latest ones). */
export const QUERY_SPAN = 2_000;
/** Entries the Mutex-protected error log keeps (a ring; older ones are overwritten). */
export const ERROR_LOG_CAPACITY = 1_024;
/** Int32 words per error log entry: seq, id, worker, status, item, check. */
export const ERROR_WORDS = 6;

/** Index of the words in the control buffer (an Int32Array over a standalone SAB). */
export const CONTROL = {
  /** Next unclaimed log line id (Atomics.add by BATCH). */
  next: 0,
  /** Workers that attached everything and wait for the start signal. */
  ready: 1,
  /** 1 once the main thread says go (workers wait on it). */
  go: 2,
  /** 1 once the main thread says stop. */
  stop: 3,
  /** Words in the control buffer. */
  length: 4,
} as const;

/** Layout of the progress record each worker publishes through its own SeqCell. */
export const PROGRESS_SCHEMA = {
  lines: "f64",
  words: "f64",
  inserts: "f64",
  deletes: "f64",
  queries: "f64",
  scanned: "f64",
  transfers: "f64",
  declined: "f64",
  payouts: "f64",
  errors: "f64",
  writes: "f64",
  p50: "u32",
  p99: "u32",
  done: "u32",
} as const satisfies Record<keyof Progress, SeqCellFieldType>;

/** A worker's progress record: counts since the start, and its latest scan's percentiles. */
export interface Progress {
  /** Log lines ingested. */
  lines: number;
  /** Words counted in the HashMap (one `add` each). */
  words: number;
  /** BPlusTree inserts. */
  inserts: number;
  /** BPlusTree deletes that found their key. */
  deletes: number;
  /** Percentile scans of the BPlusTree. */
  queries: number;
  /** Entries those scans visited. */
  scanned: number;
  /** Purchases paid (committed STM transfers). */
  transfers: number;
  /** Purchases declined (buyer short of credits; the transaction changed nothing). */
  declined: number;
  /** Platform payouts (STM transactions). */
  payouts: number;
  /** 5xx lines appended to the error log under the Mutex. */
  errors: number;
  /** SeqCell writes of this record. */
  writes: number;
  /** Median latency in ms of the latest scan. */
  p50: number;
  /** 99th percentile latency in ms of the latest scan. */
  p99: number;
  /** 1 once the worker has stopped. */
  done: number;
}

/** What the main thread posts to each worker. */
export interface DemoJob {
  /** Worker number, 0-based. */
  index: number;
  /** The heap every structure lives in. */
  heap: SharedHeapHandle;
  /** word → count. */
  counts: HashMapHandle;
  /** request id → latency in ms. */
  tree: BPlusTreeHandle;
  /** `USERS` user accounts, then the platform account. */
  accounts: LocHandle[];
  /** This worker's progress record. */
  progress: SeqCellHandle;
  /** Guards the error log. */
  mutex: MutexHandle;
  /** `CONTROL.length` Int32 words. */
  control: SharedArrayBuffer;
  /** Count word, then `ERROR_LOG_CAPACITY` entries of `ERROR_WORDS` Int32 words. */
  errorLog: SharedArrayBuffer;
}

/** What a worker posts back: its final progress, or the error that stopped it. */
export type DemoReply = { ok: true; progress: Progress } | { ok: false; error: string };

const SEARCH_TERMS = [
  "shoes",
  "lamp",
  "tea",
  "kayak",
  "socks",
  "drill",
  "piano",
  "bread",
  "tent",
  "chair",
  "ink",
  "rope",
  "globe",
  "clock",
  "soap",
  "kite",
];

/** 32-bit integer mix (murmur3 finalizer). */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The log line with request id `id`, e.g. `"GET /item/42 user=17 200 3ms"`:
 * method, path, user, status, latency. Deterministic: the same id gives the
 * same line in every worker and every run.
 */
export function logLine(id: number): string {
  const a = mix32(id + 0x9e3779b9);
  const b = mix32(a ^ 0x5bd1e995);
  const u = (b & 0xffff) / 65536;
  const item = Math.floor(ITEMS * u * u); // a few items are popular
  const kind = a & 0xff;
  let request: string;
  if (kind < 130) request = `GET /item/${item}`;
  else if (kind < 170) request = `GET /search?q=${SEARCH_TERMS[b % SEARCH_TERMS.length]}`;
  else if (kind < 200) request = `POST /cart/${item}`;
  else if (kind < 215) request = "POST /checkout";
  else if (kind < 240) request = "GET /static/app.js";
  else request = "GET /login";
  const w = (b >>> 16) / 65536;
  const user = Math.floor(USERS * w * w); // and a few users are busy
  const s = (a >>> 8) & 0x3ff;
  const status = s < 8 ? 503 : s < 14 ? 500 : s < 40 ? 404 : s < 80 ? 304 : 200;
  const v = ((a >>> 18) & 0x3fff) / 16384;
  let latency = 1 + Math.floor(2 ** (v * v * 8));
  if (status >= 500) latency = Math.min(latency * 4, 2_000);
  return `${request} user=${user} ${status} ${latency}ms`;
}

/** The fields of one log line. */
export interface LogRecord {
  /** "GET", "POST". */
  method: string;
  /** "/item/42". */
  path: string;
  /** 0 to USERS - 1. */
  user: number;
  /** HTTP status. */
  status: number;
  /** Milliseconds. */
  latency: number;
  /** Item number for /item/N and /cart/N, else -1. */
  item: number;
}

/** Parses a line made by {@linkcode logLine} from its words. */
export function parseWords(words: readonly string[]): LogRecord {
  const path = words[1];
  const slash = path.lastIndexOf("/");
  const tail = path.slice(slash + 1);
  const item = (path.startsWith("/item/") || path.startsWith("/cart/")) ? Number(tail) : -1;
  return {
    method: words[0],
    path,
    user: Number(words[2].slice(5)),
    status: Number(words[3]),
    latency: parseInt(words[4]),
    item,
  };
}

/** Check word of an error log entry: catches entries torn by unsynchronized writers. */
export function errorCheck(seq: number, id: number, worker: number, status: number): number {
  return mix32(seq ^ mix32(id ^ mix32(worker * 1000 + status))) | 0;
}

/** p50 and p99 of a latency histogram (bucket = ms, the last bucket collects the rest). */
export function percentiles(histogram: Uint32Array, n: number): { p50: number; p99: number } {
  let p50 = 0;
  let p99 = 0;
  let seen = 0;
  for (let ms = 0; ms < histogram.length; ms++) {
    const before = seen;
    seen += histogram[ms];
    if (before < n * 0.5 && seen >= n * 0.5) p50 = ms;
    if (before < n * 0.99 && seen >= n * 0.99) p99 = ms;
  }
  return { p50, p99 };
}
