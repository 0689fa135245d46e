// `node bench/report.mjs [results.json]`: the README "Performance" tables (scenarios, targets, context)
// as Markdown, from a benchmark run's JSON (default bench/results.json), so the README shows exactly
// what a run measured.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./servers.mjs";

const results = JSON.parse(readFileSync(process.argv[2] ?? join(ROOT, "bench", "results.json"), "utf8"));
const LEVELS = ["1", "16", "64"];
const fixed = (n, digits) => (typeof n === "number" ? n.toFixed(digits) : "");
const ratios = (by) => LEVELS.map((c) => fixed(by?.[c], 2)).join("/");

const lines = ["| scenario | c | req/s | p50 ms | p99 ms | CPU ms/req | × control, req/s | × control, CPU |", "|---|--:|--:|--:|--:|--:|--:|--:|"];
for (const [id, scenario] of Object.entries(results.scenarios)) {
  for (const [i, c] of LEVELS.entries()) {
    const m = scenario.concurrency[c];
    if (!m) continue;
    const versus = scenario.control ? ` (${scenario.control})` : "";
    const ratio = m.ratio === null || m.ratio === undefined ? "" : `${fixed(m.ratio, 2)}${versus}`;
    lines.push(
      `| ${i === 0 ? id : ""} | ${c} | ${Math.round(m.rps)} | ${fixed(m.p50_ms, 2)} | ${fixed(m.p99_ms, 2)} | ${fixed(m.cpu_ms, 3)} | ${ratio} | ${fixed(m.cpu_ratio, 2)} |`,
    );
  }
}

lines.push("", "| target | by req/s (c = 1 / 16 / 64) | by CPU per request | result |", "|---|---|---|---|");
for (const t of results.targets) {
  if (t.p99_ratio !== undefined) {
    lines.push(`| ${t.what} | ${fixed(t.p99_ratio, 2)} | | ${t.pass ? "pass" : "FAIL"} |`);
    continue;
  }
  const result = t.pass ? "pass" : t.pass_cpu ? "FAIL (by CPU: pass)" : "FAIL";
  lines.push(`| ${t.what} | ${ratios(t.ratio)} | ${ratios(t.cpu_ratio)} | ${result} |`);
}
const b = results.bundle;
lines.push(
  `| bundle ≤ ${Math.round(b.target_gzip_bytes / 1024)} KiB gzip | ${fixed(b.gzip_bytes / 1024, 1)} KiB gzip (${Math.round(b.bytes / 1024)} KiB raw) | | ${b.pass ? "pass" : "FAIL"} |`,
);

lines.push("", "| comparison | by req/s (c = 1 / 16 / 64) | by CPU per request |", "|---|---|---|");
for (const x of results.context) lines.push(`| ${x.what} | ${ratios(x.ratio)} | ${ratios(x.cpu_ratio)} |`);

console.log(`Run of ${results.generated_at}, load average ${results.machine.loadavg_at_start.join(" ")} at the start.\n`);
console.log(lines.join("\n"));
