// `npm run bench`: Latchkey's token endpoint and friends under local workerd, against controls and
// peers measured in the same run on the same machine (README "Performance"). Not part of `npm test`.
//
//   BENCH_SECONDS=3        counted seconds per timed measurement (after 0.5 s of warm-up)
//   BENCH_REPEATS=3        measurements per scenario and concurrency; the median is reported
//   BENCH_CONCURRENCY=1,16,64
//   BENCH_CODES=1000       codes redeemed, or client assertions used, per measurement (both single-use)
//   BENCH_ONLY=a,b         only these scenarios (and their controls); results go to dist/bench/ instead
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { latchkeySetup, oauthProviderSetup } from "./flows.mjs";
import { CONTEXT, SCENARIOS, TARGETS } from "./scenarios.mjs";
import { build, cleanTemp, freePort, ROOT, serveOidcProvider, serveWorker, startLoadGenerator } from "./servers.mjs";

const settings = {
  seconds: Number(process.env.BENCH_SECONDS ?? 3),
  warmup_seconds: 0.5,
  repeats: Number(process.env.BENCH_REPEATS ?? 3),
  concurrency: (process.env.BENCH_CONCURRENCY ?? "1,16,64").split(",").map(Number),
  codes: Number(process.env.BENCH_CODES ?? 1000),
  // Latchkey's rate-limiting bindings (bench/servers.mjs, localLimitsEntry).
  rate_limits: "in memory",
};
const only = process.env.BENCH_ONLY?.split(",");
const selected = only ? SCENARIOS.filter((s) => only.includes(s.id) || SCENARIOS.some((t) => only.includes(t.id) && t.control === s.id)) : SCENARIOS;
const needed = new Set(selected.map((s) => s.server));
const log = (...args) => console.error(...args);
const loadavgAtStart = os.loadavg().map((x) => Number(x.toFixed(2)));

// ── build and serve ─────────────────────────────────────────────────────────────────────────
log("building (wrangler deploy --dry-run)…");
const latchkeyBuild = build("latchkey", "wrangler.toml", "dev");
const workers = [
  { name: "hello", config: "bench/workers/hello.wrangler.toml" },
  { name: "sign-floor", config: "bench/workers/sign-floor.wrangler.toml" },
  { name: "grant-floor", config: "bench/workers/grant-floor.wrangler.toml" },
  { name: "oauth-provider-peer", config: "bench/workers/oauth-provider-peer.wrangler.toml" },
].filter((w) => needed.has(w.name));

const servers = new Map();
const stopAll = async () => {
  for (const s of servers.values()) await s.stop().catch(() => {});
};
process.on("SIGINT", () => stopAll().then(() => process.exit(130)));

const loader = startLoadGenerator();
try {
  log("starting servers…");
  const latchkeyPort = await freePort();
  servers.set(
    "latchkey",
    await serveWorker({
      name: "latchkey",
      config: "wrangler.toml",
      env: "dev",
      script: latchkeyBuild.script,
      port: latchkeyPort,
      // The dev environment's bindings, with the issuer where we serve it and codes that outlive minting a batch.
      vars: { ISSUER: `http://127.0.0.1:${latchkeyPort}`, AUTHORIZATION_CODE_TTL: "600" },
      // Rate limits count in memory, as Cloudflare's binding does, not in Miniflare's SQLite emulation.
      localLimits: true,
    }),
  );
  for (const w of workers) {
    const { script } = build(w.name, w.config);
    const port = await freePort();
    const vars = w.name === "oauth-provider-peer" ? { ORIGIN: `http://127.0.0.1:${port}` } : {};
    servers.set(w.name, await serveWorker({ ...w, script, port, vars }));
  }
  if (needed.has("oidc-provider")) servers.set("oidc-provider", await serveOidcProvider(await freePort()));

  // ── state, through the real flows ───────────────────────────────────────────────────────────
  log("preparing clients, a signed-in user and refresh-token chains…");
  const maxC = Math.max(...settings.concurrency);
  const state = { settings, latchkeyChains: [], peerChains: [], oidcProviderAuth: `Basic ${btoa("bench:bench-secret-0123456789abcdef0123456789abcdef")}` };
  state.latchkey = await latchkeySetup(servers.get("latchkey").origin);
  if (needed.has("oauth-provider-peer")) state.peer = await oauthProviderSetup(servers.get("oauth-provider-peer").origin);
  if (selected.some((s) => s.id === "refresh_token")) state.latchkeyChains = await state.latchkey.mintRefreshTokens(maxC);
  if (state.peer) state.peerChains = await state.peer.mintRefreshTokens(maxC);

  // ── measure: concurrency, then repeat, then every scenario, so a scenario and its control are
  // always measured minutes apart at most and their ratio is paired within one repeat ────────
  const runs = new Map(selected.map((s) => [s.id, new Map(settings.concurrency.map((c) => [c, []]))]));
  for (const c of settings.concurrency) {
    for (let r = 0; r < settings.repeats; r++) {
      for (const scenario of selected) {
        const server = servers.get(scenario.server);
        const job = await scenario.prepare(state, c);
        const result = await loader.run({
          ...job,
          origin: server.origin,
          connections: c,
          seconds: settings.seconds,
          warmup_seconds: settings.warmup_seconds,
          cpu_pid: server.pid,
        });
        scenario.after?.(state, c, result);
        runs.get(scenario.id).get(c).push(result);
        log(
          `  ${scenario.id.padEnd(34)} c=${String(c).padStart(2)} #${r + 1}  ${fmt(result.rps, 0).padStart(6)} req/s  p50 ${fmt(result.p50_ms, 2)} ms  p99 ${fmt(result.p99_ms, 2)} ms  cpu ${fmt(result.cpu_ms, 3)} ms${result.errors ? `  ERRORS ${result.errors}: ${result.first_error}` : ""}`,
        );
      }
    }
  }

  const report = summarize(runs);
  print(report);
  const path = only ? join(ROOT, "dist", "bench", "results.partial.json") : join(ROOT, "bench", "results.json");
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  log(`\nwrote ${path}`);
} finally {
  loader.stop();
  await stopAll();
  cleanTemp();
}

/** The versions of what serves the Workers and the peers. */
function versions() {
  const version = (pkg, from = ROOT) => JSON.parse(readFileSync(createRequire(join(from, "package.json")).resolve(`${pkg}/package.json`), "utf8")).version;
  const wranglerDir = dirname(createRequire(join(ROOT, "package.json")).resolve("wrangler/package.json"));
  return {
    wrangler: version("wrangler"),
    miniflare: version("miniflare", wranglerDir),
    workerd: version("workerd", wranglerDir),
    "oidc-provider": version("oidc-provider"),
    "@cloudflare/workers-oauth-provider": version("@cloudflare/workers-oauth-provider"),
  };
}

// ── reporting ─────────────────────────────────────────────────────────────────────────────────
function median(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function fmt(x, digits) {
  return x === null || x === undefined ? "–" : x.toFixed(digits);
}

/** Median of the ratios a/b paired within each repeat. */
function pairedRatio(a, b, key = "rps") {
  return median(a.map((run, i) => (b[i] ? run[key] / b[i][key] : null)));
}

function summarize(runs) {
  const scenarios = {};
  for (const s of selected) {
    const byC = {};
    for (const c of settings.concurrency) {
      const these = runs.get(s.id).get(c);
      const control = s.control && runs.get(s.control)?.get(c);
      byC[c] = {
        rps: median(these.map((x) => x.rps)),
        p50_ms: median(these.map((x) => x.p50_ms)),
        p99_ms: median(these.map((x) => x.p99_ms)),
        cpu_ms: median(these.map((x) => x.cpu_ms)),
        ratio: control ? pairedRatio(these, control) : null,
        // CPU per request of the control over ours: efficiency, far less sensitive to a busy machine than req/s.
        cpu_ratio: control ? median(these.map((x, i) => (control[i] ? control[i].cpu_ms / x.cpu_ms : null))) : null,
        errors: these.reduce((n, x) => n + x.errors, 0),
        runs: these.map(({ chains: _chains, ...x }) => x),
      };
    }
    scenarios[s.id] = { label: s.label, control: s.control ?? null, concurrency: byC };
  }
  const targets = TARGETS.filter((t) => scenarios[t.scenario] && scenarios[t.versus]).map((t) => {
    const a = runs.get(t.scenario);
    const b = runs.get(t.versus);
    if (t.min !== undefined) {
      const by = Object.fromEntries(settings.concurrency.map((c) => [c, pairedRatio(a.get(c), b.get(c))]));
      // The same target read on CPU per request (theirs over ours), which a busy machine disturbs far less.
      const byCpu = Object.fromEntries(settings.concurrency.map((c) => [c, pairedRatio(b.get(c), a.get(c), "cpu_ms")]));
      const pass = (ratios) => Object.values(ratios).every((x) => x !== null && x >= t.min);
      return { ...t, ratio: by, pass: pass(by), cpu_ratio: byCpu, pass_cpu: pass(byCpu) };
    }
    const c = settings.concurrency.includes(16) ? 16 : settings.concurrency[0];
    const ratio = pairedRatio(a.get(c), b.get(c), "p99_ms");
    return { ...t, concurrency: c, p99_ratio: ratio, pass: ratio !== null && ratio <= t.p99_max };
  });
  const context = CONTEXT.filter((t) => scenarios[t.scenario] && scenarios[t.versus]).map((t) => ({
    ...t,
    ratio: Object.fromEntries(settings.concurrency.map((c) => [c, pairedRatio(runs.get(t.scenario).get(c), runs.get(t.versus).get(c))])),
    cpu_ratio: Object.fromEntries(settings.concurrency.map((c) => [c, pairedRatio(runs.get(t.versus).get(c), runs.get(t.scenario).get(c), "cpu_ms")])),
  }));
  return {
    generated_at: new Date().toISOString(),
    command: "npm run bench",
    machine: {
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model,
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      runtime: versions(),
      // Other processes share these cores: the load average says how much (README "Performance").
      loadavg_at_start: loadavgAtStart,
      loadavg_at_end: os.loadavg().map((x) => Number(x.toFixed(2))),
    },
    settings,
    bundle: { bytes: latchkeyBuild.bytes, gzip_bytes: latchkeyBuild.gzip_bytes, target_gzip_bytes: 300 * 1024, pass: latchkeyBuild.gzip_bytes <= 300 * 1024 },
    scenarios,
    targets,
    context,
  };
}

function print(report) {
  const head = ["scenario", "c", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "× control (req/s)", "× control (CPU)"];
  const rows = [];
  for (const [id, s] of Object.entries(report.scenarios)) {
    for (const [c, m] of Object.entries(s.concurrency)) {
      const versus = (x) => (x === null ? "" : `${fmt(x, 2)} ${s.control}`);
      rows.push([id, c, fmt(m.rps, 0), fmt(m.p50_ms, 2), fmt(m.p99_ms, 2), fmt(m.cpu_ms, 3), versus(m.ratio), versus(m.cpu_ratio)]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((x, i) => (i > 0 && i < 6 ? x.padStart(widths[i]) : x.padEnd(widths[i]))).join(" | ")} |`;
  console.log(`\n${line(head)}\n|${widths.map((w, i) => (i > 0 && i < 6 ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`);
  for (const r of rows) console.log(line(r));
  console.log("\nTargets:");
  const each = (ratios) =>
    Object.entries(ratios)
      .map(([c, x]) => `c=${c}: ${fmt(x, 2)}`)
      .join(", ");
  for (const t of report.targets) {
    if (t.min === undefined) {
      console.log(`  ${t.pass ? "PASS" : "FAIL"}  ${t.what}  (p99 ratio at c=${t.concurrency}: ${fmt(t.p99_ratio, 2)})`);
      continue;
    }
    console.log(`  ${t.pass ? "PASS" : "FAIL"}  ${t.what}, by req/s  (${each(t.ratio)})`);
    console.log(`  ${t.pass_cpu ? "PASS" : "FAIL"}  ${t.what}, by CPU per request  (${each(t.cpu_ratio)})`);
  }
  if (report.context.length) console.log("\nContext (not targets):");
  for (const t of report.context) console.log(`  ${t.what}: by req/s ${each(t.ratio)}; by CPU per request ${each(t.cpu_ratio)}`);
  const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
  console.log(`\nBundle: ${kib(report.bundle.bytes)}, gzip ${kib(report.bundle.gzip_bytes)} (target ≤ 300 KiB: ${report.bundle.pass ? "PASS" : "FAIL"})`);
  console.log(`Machine: ${report.machine.cpus} × ${report.machine.cpu_model}, ${report.machine.memory_gib} GiB, Node ${report.machine.node}`);
}
