import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { plan, previewSecrets, workerName } from "../../scripts/preview";

const SCRIPT = join(import.meta.dirname, "..", "..", "scripts", "preview.ts");

describe("preview environments per branch (scripts/preview.mjs)", () => {
  it("names a Worker for any branch: a DNS label, distinct per branch", () => {
    const names = ["main", "feature/Add-CIBA", "Feature/add_ciba", "fix/ünïcödé ☃ spaces", "-", "x".repeat(200), "a/b/c.d@{1}"].map(workerName);
    for (const name of names) expect(name).toMatch(/^latchkey-pv-([a-z0-9]+(-[a-z0-9]+)*-)?[0-9a-f]{6}$/);
    for (const name of names) expect(name.length).toBeLessThanOrEqual(63);
    expect(new Set(names).size).toBe(names.length);
    expect(workerName("feature/Add-CIBA")).toMatch(/^latchkey-pv-feature-add-ciba-[0-9a-f]{6}$/);
    expect(workerName("feature/Add-CIBA")).toBe(workerName("feature/Add-CIBA"));
    expect(() => workerName("")).toThrow("a branch name is required");
  });

  it("plans one deploy with its own Worker name, issuer and secrets (a new Worker needs its required secrets at once)", () => {
    const p = plan("feature/odd name!", { subdomain: "acme" });
    expect(p.issuer).toBe(`https://${p.name}.acme.workers.dev`);
    expect(p.commands).toEqual([
      ["wrangler", "deploy", "--env", "preview", "--name", p.name, "--var", `ISSUER:${p.issuer}`, "--secrets-file", "<secrets.json>"],
    ]);
    expect(p.secrets).toEqual(["ADMIN_TOKEN", "SESSION_SECRET", "KEY_ENCRYPTION_KEY"]);
    expect(() => plan("x", { subdomain: "" })).toThrow("CF_WORKERS_SUBDOMAIN");
  });

  it("derives the secrets from the seed: the same on every push of a branch, distinct per branch and per secret", () => {
    const seed = "s".repeat(32);
    const a = previewSecrets(workerName("feature/a"), seed);
    expect(previewSecrets(workerName("feature/a"), seed)).toEqual(a);
    const b = previewSecrets(workerName("feature/b"), seed);
    const values = [...Object.values(a), ...Object.values(b)];
    expect(new Set(values).size).toBe(6);
    for (const value of values) expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(previewSecrets(workerName("feature/a"), "t".repeat(32)).KEY_ENCRYPTION_KEY).not.toBe(a.KEY_ENCRYPTION_KEY);
    expect(() => previewSecrets("x", "short")).toThrow("PREVIEW_SECRET_SEED (32+ characters) is required");
    const printed = execFileSync(process.execPath, [SCRIPT, "--admin-token", "feature/a"], { env: { ...process.env, PREVIEW_SECRET_SEED: seed } }).toString();
    expect(printed.trim()).toBe(a.ADMIN_TOKEN);
  });

  it("plans removal, and prints plans without running anything on --dry-run", () => {
    expect(plan("feature/x", { remove: true }).commands).toEqual([["wrangler", "delete", "--name", workerName("feature/x"), "--force"]]);
    const out = execFileSync(process.execPath, [SCRIPT, "--dry-run", "release/2026.11 (rc)"], {
      env: { ...process.env, CF_WORKERS_SUBDOMAIN: "acme" },
    }).toString();
    expect(JSON.parse(out)).toMatchObject({
      name: workerName("release/2026.11 (rc)"),
      issuer: expect.stringMatching(/^https:\/\/latchkey-pv-release-2026-11-rc-[0-9a-f]{6}\.acme\.workers\.dev$/),
    });
  });

  it("deploys to an environment the dry run accepts", () => {
    const p = plan("feature/dry", { subdomain: "acme" });
    const [deploy] = p.commands as string[][];
    const dir = mkdtempSync(join(tmpdir(), "preview-test-"));
    const file = join(dir, "secrets.json");
    writeFileSync(file, JSON.stringify(previewSecrets(p.name, "s".repeat(32))));
    let out: string;
    try {
      out = execFileSync(
        "wrangler",
        [
          ...(deploy as string[]).slice(1).map((a) => (a === "<secrets.json>" ? file : a)),
          "--dry-run",
          "--outdir",
          join(import.meta.dirname, "..", "..", "dist", "preview-test"),
        ],
        {
          env: { ...process.env, WRANGLER_SEND_METRICS: "false", PATH: `${join(import.meta.dirname, "..", "..", "node_modules", ".bin")}:${process.env.PATH}` },
          cwd: join(import.meta.dirname, "..", ".."),
        },
      ).toString();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // wrangler hides the value of a --var; the name and bindings show the preview is its own Worker.
    expect(out).toContain('env.ISSUER ("(hidden)")');
    expect(out).toContain("env.GRANTS (GrantObject)");
    expect(out).toContain("--dry-run: exiting now.");
  });
});
