/**
 * The slowest single `set` while W workers insert N new keys into one
 * HashMap that starts at 16 slots, so that it resizes about twenty times
 * under them: no operation should pay for a whole table. Prints the total
 * time (from the workers' common start), the slowest `set` of any worker,
 * and how many times the resize steps ran (promotions, migration and
 * retirement chunks). Reports and asserts nothing else: timings never fail
 * a run.
 *
 * On a machine with fewer cores than workers, a `set` can also be slow
 * because its worker lost the core for a time slice.
 *
 * Run: `deno run --allow-read bench/hashmap_resize_latency.ts [workers=4] [keys=2000000]`
 *
 * @module
 */

import { HashMap } from "../hashmap/mod.ts";
import { SharedHeap } from "../memory/mod.ts";
import { runWorkers } from "../testing/harness.ts";
import type { ResizeReport } from "./_hashmap_workers.ts";

const workers = Number(Deno.args[0] ?? 4);
const keys = Number(Deno.args[1] ?? 2_000_000);
const heap = SharedHeap.create({ maxBytes: 1 << 30 });
const map = HashMap.create(heap, { key: "i32", value: "i32" });
// The workers start together from the harness's start barrier.
const reports = await runWorkers<{ map: typeof map.handle; keys: number }, ResizeReport>({
  module: new URL("./_hashmap_workers.ts", import.meta.url),
  fn: "insertTimed",
  workers,
  heap,
  args: { map: map.handle, keys },
  timeoutMs: Infinity,
});
const totalMs = Math.max(...reports.map((report) => report.ms));
const sites: Record<string, number> = {};
for (const report of reports) {
  for (const [site, count] of Object.entries(report.sites)) {
    sites[site] = (sites[site] ?? 0) + count;
  }
}
const slowest = Math.max(...reports.map((report) => report.slowestMs));
console.log(
  `${workers} workers inserted ${keys} keys in ${totalMs.toFixed(0)} ms ` +
    `(${(keys / totalMs / 1000).toFixed(2)}M sets/s); slowest set ${slowest.toFixed(1)} ms; ` +
    `size ${map.size}, capacity ${map.capacity}`,
);
console.log(
  `resize steps: ${sites["hashmap.promote"] ?? 0} promotions, ` +
    `${sites["hashmap.migrate.chunk"] ?? 0} migrated chunks, ` +
    `${sites["hashmap.retire.chunk"] ?? 0} retired chunks`,
);
