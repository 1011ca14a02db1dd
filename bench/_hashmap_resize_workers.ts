/**
 * Worker side of `hashmap_resize_latency.ts`: inserts its share of the keys
 * into a HashMap, timing every `set`, and counts the crash points it passes
 * (one per resize step) through the fault-injection hook.
 *
 * @module
 */

import { HashMap, type HashMapHandle } from "../hashmap/mod.ts";
import { faultInjection } from "../memory/mod.ts";

/** What the main thread sends. */
export interface ResizeJob {
  readonly map: HashMapHandle;
  readonly index: number;
  readonly workers: number;
  readonly keys: number;
}

/** What a worker answers. */
export interface ResizeReport {
  readonly ms: number;
  readonly slowestMs: number;
  readonly sites: Record<string, number>;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ResizeJob>) => void) | null;
  postMessage(message: ResizeReport): void;
};

scope.onmessage = (event: MessageEvent<ResizeJob>) => {
  const { index, workers, keys } = event.data;
  const map = HashMap.attach<number, number>(event.data.map);
  const sites: Record<string, number> = {};
  faultInjection.hook = (site) => {
    sites[site] = (sites[site] ?? 0) + 1;
  };
  let slowestMs = 0;
  const start = performance.now();
  for (let k = index; k < keys; k += workers) {
    const before = performance.now();
    map.set(k, k);
    const took = performance.now() - before;
    if (took > slowestMs) slowestMs = took;
  }
  const report: ResizeReport = { ms: performance.now() - start, slowestMs, sites };
  scope.postMessage(report);
};
