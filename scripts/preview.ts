// Preview environments, one per branch: `npm run preview -- <branch>` deploys the branch as its own
// Worker (so its own Durable Objects and KV, never production's), `npm run preview -- --delete <branch>`
// removes it, `--admin-token <branch>` prints the preview's admin token, and `--dry-run` prints the planned
// commands as JSON without running anything.
//
// Needs CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID (wrangler reads them), CF_WORKERS_SUBDOMAIN (the
// account's workers.dev subdomain, which names the preview's issuer URL) and PREVIEW_SECRET_SEED (32+
// characters), from which each preview's secrets are derived: the same on every push, so a preview keeps
// reading the signing keys it stored, and its admin token can be had by whoever holds the seed.
import { spawnSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MAX_NAME = 63; // Worker names are DNS labels.

/** A Worker name for a branch: lowercase letters, digits and dashes, with a hash so distinct branches never collide. */
export function workerName(branch: string): string {
  if (!branch || typeof branch !== "string") throw new Error("a branch name is required");
  const hash = createHash("sha256").update(branch).digest("hex").slice(0, 6);
  const prefix = "latchkey-pv-";
  const slug = branch
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, MAX_NAME - prefix.length - hash.length - 1)
    .replace(/-+$/g, "");
  return `${prefix}${slug ? `${slug}-` : ""}${hash}`;
}

/** The commands that deploy (or delete) a branch's preview, as argv arrays plus the secrets to set. */
export interface Plan {
  name: string;
  issuer?: string;
  commands: string[][];
  secrets?: string[];
}

export function plan(branch: string, { remove = false, subdomain = process.env.CF_WORKERS_SUBDOMAIN }: { remove?: boolean; subdomain?: string } = {}): Plan {
  const name = workerName(branch);
  if (remove) return { name, commands: [["wrangler", "delete", "--name", name, "--force"]] };
  if (!subdomain) throw new Error("CF_WORKERS_SUBDOMAIN (the account's workers.dev subdomain) is required");
  const issuer = `https://${name}.${subdomain}.workers.dev`;
  return {
    name,
    issuer,
    // One step: a new Worker cannot be deployed without its required secrets (wrangler.toml), so they go with it.
    commands: [["wrangler", "deploy", "--env", "preview", "--name", name, "--var", `ISSUER:${issuer}`, "--secrets-file", "<secrets.json>"]],
    secrets: [...SECRETS],
  };
}

const SECRETS = ["ADMIN_TOKEN", "SESSION_SECRET", "KEY_ENCRYPTION_KEY"] as const;

/** The secrets of the preview `name`: HMAC-SHA256 of the seed, distinct per Worker and per secret, stable across pushes. */
export function previewSecrets(name: string, seed = process.env.PREVIEW_SECRET_SEED): Record<(typeof SECRETS)[number], string> {
  if (!seed || seed.length < 32) throw new Error("PREVIEW_SECRET_SEED (32+ characters) is required");
  const derive = (secret: string) => createHmac("sha256", seed).update(`latchkey preview\n${name}\n${secret}`).digest("base64url");
  return Object.fromEntries(SECRETS.map((secret) => [secret, derive(secret)])) as Record<(typeof SECRETS)[number], string>;
}

function run(argv: string[]): void {
  const result = spawnSync(argv[0] as string, argv.slice(1), { stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
  if (result.status !== 0) throw new Error(`${argv.join(" ")} failed (${result.status})`);
}

function main(args: string[]): void {
  const remove = args.includes("--delete");
  const dryRun = args.includes("--dry-run");
  const branch = args.find((a) => !a.startsWith("--"));
  if (args.includes("--admin-token")) {
    console.log(previewSecrets(workerName(branch as string)).ADMIN_TOKEN);
    return;
  }
  const p = plan(branch as string, { remove });
  if (dryRun) {
    console.log(JSON.stringify(p, null, 2));
    return;
  }
  if (remove) {
    for (const command of p.commands) run(command);
    console.log(`deleted ${p.name}`);
    return;
  }
  const values = previewSecrets(p.name);
  const dir = mkdtempSync(join(tmpdir(), "latchkey-preview-"));
  const file = join(dir, "secrets.json");
  try {
    writeFileSync(file, JSON.stringify(values), { mode: 0o600 });
    for (const command of p.commands) run(command.map((a) => (a === "<secrets.json>" ? file : a)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`preview ${p.name} deployed at ${p.issuer}`);
  if (process.env.GITHUB_OUTPUT) writeFileSync(process.env.GITHUB_OUTPUT, `url=${p.issuer}\nname=${p.name}\n`, { flag: "a" });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(`preview: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
