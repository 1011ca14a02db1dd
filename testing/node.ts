/**
 * Running sabre under Node from a Deno test: bundle an entry module with
 * `deno bundle`, then run a Node script on the bundle.
 *
 * @module
 */

const root = new URL("../", import.meta.url);

/**
 * Whether a test that needs Node must fail where `node` is missing
 * (`SABRE_REQUIRE_NODE=1`, which CI sets) instead of being ignored.
 *
 * @example
 * ```ts
 * import { requireNode } from "./node.ts";
 * console.assert(typeof requireNode === "boolean");
 * ```
 */
export const requireNode = Deno.env.get("SABRE_REQUIRE_NODE") === "1";

/**
 * The Node to run: `SABRE_NODE` (a path; CI installs a recent Node there,
 * whose WebAssembly memory gives sabre its kernel), else `node` on the PATH.
 *
 * @example
 * ```ts
 * import { nodeCommand } from "./node.ts";
 * console.assert(nodeCommand.length > 0);
 * ```
 */
export const nodeCommand = Deno.env.get("SABRE_NODE") || "node";

/**
 * The version of {@linkcode nodeCommand}, or undefined where there is none.
 *
 * @example
 * ```ts
 * import { nodeVersion } from "./node.ts";
 * const version = await nodeVersion();
 * console.assert(version === undefined || version.startsWith("v"));
 * ```
 */
export async function nodeVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(nodeCommand, { args: ["--version"], stdout: "piped" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What {@linkcode runUnderNode} saw.
 *
 * @example
 * ```ts
 * import type { NodeRun } from "./node.ts";
 * const run: NodeRun = { result: { ok: true }, success: true, code: 0, stdout: "", stderr: "" };
 * console.assert(run.success);
 * ```
 */
export interface NodeRun {
  /** The last line of stdout, parsed as JSON. */
  readonly result: unknown;
  readonly success: boolean;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Bundles `entry` (a path from the project root) into one JavaScript file,
 * runs `node script <bundle> ...args` with {@linkcode nodeCommand} (killed
 * after `timeoutMs`), and returns what it printed, its last line parsed as
 * JSON. Throws where the bundle fails or Node prints nothing.
 *
 * @example
 * ```ts ignore
 * import { runUnderNode } from "./node.ts";
 * const run = await runUnderNode("mod.ts", new URL("../examples/node_workers.mjs", import.meta.url));
 * console.assert(run.success);
 * ```
 */
export async function runUnderNode(
  entry: string,
  script: URL,
  args: string[] = [],
  timeoutMs = 240_000,
): Promise<NodeRun> {
  const dir = await Deno.makeTempDir({ prefix: "sabre-node-" });
  try {
    const bundle = `${dir}/bundle.mjs`;
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "browser", "-o", bundle, entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!built.success) throw new Error(new TextDecoder().decode(built.stderr));
    const run = await new Deno.Command(nodeCommand, {
      args: [script.pathname, bundle, ...args],
      stdout: "piped",
      stderr: "piped",
      // A worker that never starts would keep Node waiting for good.
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const stdout = new TextDecoder().decode(run.stdout).trim();
    const stderr = new TextDecoder().decode(run.stderr).trim();
    if (stdout.length === 0) throw new Error(`node printed nothing; stderr: ${stderr}`);
    return {
      result: JSON.parse(stdout.split("\n").at(-1)!),
      success: run.success,
      code: run.code,
      stdout,
      stderr,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
