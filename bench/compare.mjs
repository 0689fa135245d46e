// `node bench/compare.mjs <bundle A> <bundle B> [scenario] [concurrency] [rounds]`: A/B of two builds
// of Latchkey on one benchmark scenario. Both are served at once and measured alternately, round
// after round, so that a busy machine weighs on both alike; prints the median CPU per request and
// req/s of each and the paired ratios. Build each variant first, e.g.
//   wrangler deploy --dry-run --env dev --outdir dist/ab-before    (then change the code)
//   wrangler deploy --dry-run --env dev --outdir dist/ab-after
//   node bench/compare.mjs dist/ab-before/index.js dist/ab-after/index.js refresh_token 16
// This is how the cost breakdown in README "Performance" was measured: each step is a variant that
// answers earlier in the pipeline. A bundle written `<path>:local-limits` is served with in-memory
// rate-limit counters instead of Miniflare's emulated binding (bench/servers.mjs, localLimitsEntry), so
// `node bench/compare.mjs dist/x/index.js dist/x/index.js:local-limits` measures what the emulation costs.
import { latchkeySetup } from "./flows.mjs";
import { SCENARIOS } from "./scenarios.mjs";
import { cleanTemp, freePort, serveWorker, startLoadGenerator } from "./servers.mjs";

const [bundleA, bundleB, id = "client_credentials", c = "16", rounds = "8"] = process.argv.slice(2);
if (!bundleA || !bundleB) throw new Error("usage: node bench/compare.mjs <bundle A> <bundle B> [scenario] [concurrency] [rounds]");
const scenario = SCENARIOS.find((s) => s.id === id && s.server === "latchkey");
if (!scenario) throw new Error(`no Latchkey scenario ${id}`);
const connections = Number(c);

const variants = [];
const loader = startLoadGenerator();
try {
  for (const [name, script] of [
    ["A", bundleA],
    ["B", bundleB],
  ]) {
    const port = await freePort();
    const vars = { ISSUER: `http://127.0.0.1:${port}`, AUTHORIZATION_CODE_TTL: "600" };
    const [path, flag] = script.split(":");
    const server = await serveWorker({ name: "latchkey", config: "wrangler.toml", env: "dev", script: path, port, vars, localLimits: flag === "local-limits" });
    const state = { settings: { codes: 600 }, latchkeyChains: [] };
    state.latchkey = await latchkeySetup(server.origin);
    variants.push({ name, server, state, results: [] });
  }
  for (let r = 0; r < Number(rounds); r++) {
    // Alternate which goes first, so that neither always follows the other.
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const job = await scenario.prepare(v.state, connections);
      const result = await loader.run({ ...job, origin: v.server.origin, connections, seconds: 1.5, warmup_seconds: 0.3, cpu_pid: v.server.pid });
      scenario.after?.(v.state, connections, result);
      v.results.push(result);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const v of variants) {
    const errors = v.results.reduce((n, x) => n + x.errors, 0);
    console.log(
      `${v.name}: ${median(v.results.map((x) => x.rps)).toFixed(0)} req/s, CPU ${median(v.results.map((x) => x.cpu_ms)).toFixed(3)} ms/req, ${errors} errors`,
    );
  }
  const [a, b] = variants;
  const cpu = median(b.results.map((x, i) => a.results[i].cpu_ms / x.cpu_ms));
  const rps = median(b.results.map((x, i) => x.rps / a.results[i].rps));
  console.log(`B vs A: CPU per request A/B ${cpu.toFixed(3)}, req/s B/A ${rps.toFixed(3)} (medians of paired rounds)`);
} finally {
  loader.stop();
  for (const v of variants) await v.server.stop();
  cleanTemp();
}
