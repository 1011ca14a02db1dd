/**
 * HashMap under Node, where `worker.terminate()` stops a worker wherever it
 * is: workers killed at random moments, in the middle of map operations.
 * Deno's `terminate()` waits for the worker's event loop, so the Deno tests
 * stop workers at named crash points instead (`hashmap_workers_test.ts`).
 * The script is `_node_termination_test_workers.mjs`.
 */

import assert from "node:assert/strict";
import { nodeVersion, requireNode, runUnderNode } from "../testing/node.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const version = await nodeVersion();
// About 0.3 s a kill. Kill bugs show rarely (a size one off came once in
// about 400 kills, a lost wake-up once in about 1,400), so every run counts.
const KILLS = 20 * STRESS;

Deno.test({
  name:
    `node termination: workers killed at random moments inside map operations leave the map whole, ${KILLS} kills (Node ${
      version ?? "not found"
    })`,
  ignore: version === undefined && !requireNode,
  async fn() {
    assert.ok(version !== undefined, "node is not on the PATH (SABRE_REQUIRE_NODE=1)");
    const run = await runUnderNode(
      "hashmap/_node_termination_test_workers.ts",
      new URL("_node_termination_test_workers.mjs", import.meta.url),
      [String(KILLS)],
    );
    const result = run.result as {
      kills?: { beatsAtKill: number; kernel: boolean; leaked: number }[];
      error?: string;
    };
    assert.equal(result.error, undefined, result.error);
    assert.ok(run.success, `node exited with ${run.code}; stderr: ${run.stderr}`);
    assert.equal(result.kills!.length, KILLS);
    // Each kill landed while the worker was running operations; from Node
    // 26 on (toResizableBuffer), with the kernel taking part.
    const kernel = Number(version!.slice(1).split(".")[0]) >= 26;
    for (const kill of result.kills!) {
      assert.ok(kill.beatsAtKill > 0, JSON.stringify(kill));
      if (kernel) assert.ok(kill.kernel, `the kernel did not run: ${JSON.stringify(kill)}`);
    }
  },
});
