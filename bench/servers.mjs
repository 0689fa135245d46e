// Builds and serves everything the benchmark measures, each in its own process so that its CPU time
// can be read from /proc: every Worker (Latchkey, the controls, the workers-oauth-provider peer) is
// bundled by `wrangler deploy --dry-run --outdir` and served by its own local workerd through
// Miniflare's API (not `wrangler dev`, whose proxy caps throughput), with the bindings its wrangler
// config declares; node-oidc-provider runs in a child Node process.
import { execFileSync, fork } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { basename, dirname, join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { childPids } from "./proc.mjs";

export const ROOT = join(import.meta.dirname, "..");

// Miniflare keeps Durable Object and KV storage under the temp dir. On tmpfs, the benchmark measures
// the Workers and not the fsync latency of this machine's disk (Cloudflare's storage is another system
// altogether); every server here gets the same.
if (existsSync("/dev/shm")) process.env.TMPDIR = mkdtempSync("/dev/shm/latchkey-bench-");
/** Removes the temp dir made above. */
export function cleanTemp() {
  if (process.env.TMPDIR?.startsWith("/dev/shm/latchkey-bench-")) rmSync(process.env.TMPDIR, { recursive: true, force: true });
}
// However the process ends (an error before the cleanup, Ctrl-C), tmpfs is memory: give it back.
process.on("exit", cleanTemp);
const require = createRequire(import.meta.url);
// The Miniflare that wrangler itself depends on (the top-level one belongs to the vitest plugin).
const { Miniflare, convertV4MiniflareOptions } = await import(createRequire(require.resolve("wrangler/package.json")).resolve("miniflare"));

/** A loopback port that was free a moment ago (the issuer must name its port before the server starts). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * `wrangler deploy --dry-run --outdir`: the bundle exactly as it would be uploaded. Returns its path
 * and its size raw and gzipped.
 */
export function build(name, config, env) {
  const outdir = join(ROOT, "dist", "bench", name);
  rmSync(outdir, { recursive: true, force: true });
  const args = ["deploy", "--dry-run", "-c", config, "--outdir", outdir, ...(env ? ["--env", env] : [])];
  execFileSync(join(ROOT, "node_modules", ".bin", "wrangler"), args, {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  // The bundle is named after the entry module; workerd wants its path relative to where it runs.
  const file = readdirSync(outdir).find((f) => f.endsWith(".js"));
  if (!file) throw new Error(`wrangler wrote no bundle for ${name}`);
  const script = relative(ROOT, join(outdir, file));
  const bytes = readFileSync(join(outdir, file));
  return { script, bytes: bytes.length, gzip_bytes: gzipSync(bytes, { level: 9 }).length };
}

/**
 * The entry module that serves a bundle with its rate-limiting bindings replaced by in-memory counters.
 *
 * Miniflare emulates each `ratelimits` binding's `limit()` as a fetch to a Durable Object that reads and
 * writes SQLite: every call costs about what the grant floor's one Durable Object write costs. Cloudflare's
 * binding is a counter kept in the location that serves the Worker, consulted without a storage write.
 * The counters here count the same way (fixed windows of `period` seconds, one count per call, `success`
 * while a key is within `limit`), once per isolate, so the Worker makes the same calls at a cost closer to
 * what it pays when deployed. `npm run bench` serves Latchkey this way (`settings.rate_limits` in
 * results.json says so); bench/compare.mjs either way.
 */
function localLimitsEntry(bundle, ratelimits) {
  const limits = Object.fromEntries(Object.entries(ratelimits).map(([name, { simple }]) => [name, simple]));
  return `import worker from "./${bundle}";
export * from "./${bundle}";
const LIMITS = ${JSON.stringify(limits)};
class InMemoryRateLimit {
  constructor({ limit, period }) { this.max = limit; this.periodMs = period * 1000; this.window = -1; this.counts = new Map(); }
  async limit({ key }) {
    const window = Math.floor(Date.now() / this.periodMs);
    if (window !== this.window) { this.window = window; this.counts.clear(); }
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, count);
    return { success: count <= this.max };
  }
}
const replaced = new WeakMap();
function withLimits(env) {
  let out = replaced.get(env);
  if (!out) {
    out = { ...env };
    for (const [name, simple] of Object.entries(LIMITS)) out[name] = new InMemoryRateLimit(simple);
    replaced.set(env, out);
  }
  return out;
}
export default { fetch: (request, env, ctx) => worker.fetch(request, withLimits(env), ctx) };
`;
}

/**
 * Serves a bundle under its own workerd with the bindings of `config` (and `env`), plus `vars`.
 * Storage is in memory. With `localLimits`, rate-limiting bindings count in memory (localLimitsEntry).
 * Returns its origin, the workerd pid and a stop function.
 */
export async function serveWorker({ name, config, env, script, vars = {}, port, inspectorPort, localLimits = false }) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, config), env);
  // The bundle is one ES module: wrangler's module rules and root path are for sources, not bundles.
  const { modulesRules: _rules, rootPath: _root, ...options } = workerOptions;
  let modules = [{ type: "ESModule", path: script }];
  if (localLimits) {
    const entry = join(dirname(script), "local-limits-entry.js");
    writeFileSync(join(ROOT, entry), localLimitsEntry(basename(script), options.ratelimits ?? {}));
    modules = [{ type: "ESModule", path: entry }, ...modules];
  }
  const before = childPids("workerd");
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      ...(inspectorPort ? { inspectorPort } : {}),
      workers: [
        {
          ...options,
          name,
          modules,
          modulesRoot: ROOT,
          bindings: { ...options.bindings, ...vars },
          // Straight into the Worker: Miniflare's own entry worker (which adds `request.cf`, live reload
          // and the like before it calls the Worker) would otherwise run first on every request.
          unsafeDirectSockets: [{ host: "127.0.0.1", port }],
        },
      ],
    }),
  );
  await mf.ready;
  const url = await mf.unsafeGetDirectURL(name);
  const [pid] = [...childPids("workerd")].filter((p) => !before.has(p));
  if (!pid) throw new Error(`cannot find the workerd process serving ${name}`);
  return { name, origin: url.origin, pid, stop: () => mf.dispose() };
}

/** node-oidc-provider in a child Node process (bench/oidc-provider.mjs). */
export async function serveOidcProvider(port) {
  const child = fork(join(import.meta.dirname, "oidc-provider.mjs"), [String(port)], {
    env: { ...process.env, NODE_ENV: "production" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  await new Promise((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (code) => reject(new Error(`oidc-provider exited (${code})`)));
  });
  return {
    name: "oidc-provider",
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stop: async () => {
      child.kill();
    },
  };
}

/** The load generator child (bench/load.mjs); `run(job)` resolves with its measurement. */
export function startLoadGenerator() {
  const child = fork(join(import.meta.dirname, "load.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting = new Map();
  let next = 0;
  child.on("message", ({ id, result, error }) => {
    const w = waiting.get(id);
    waiting.delete(id);
    if (error) w?.reject(new Error(error));
    else w?.resolve(result);
  });
  return {
    run: (job) =>
      new Promise((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve, reject });
        child.send({ id, job });
      }),
    stop: () => child.kill(),
  };
}
