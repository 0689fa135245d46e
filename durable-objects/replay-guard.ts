import { DurableObject } from "cloudflare:workers";
import { now as clock } from "../workers/clock";

/**
 * ReplayGuard: remembers single-use identifiers (client assertion `jti`s, DPoP proof `jti`s,
 * attestation PoPs, ID-JAGs) until they expire. Sharded by a hash of the identifier
 * (`workers/replay.ts`), so no single object is hot.
 *
 *   (unseen) ──claim──► seen ──exp passes (alarm)──► (forgotten)
 *                         └──claim again──► replayed
 *
 * `claim` is one SQLite statement, so two simultaneous claims of one id cannot both succeed.
 */
export class ReplayGuard extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, exp INTEGER NOT NULL)");
  }

  /** Records `id` as used until `exp` (seconds); `replayed` if it was already recorded and not yet expired. */
  async claim(input: { id: string; exp: number; now: number }): Promise<{ ok: true } | { ok: false; reason: "replayed" }> {
    const sql = this.ctx.storage.sql;
    // An expired record no longer protects anything; let the id be claimed afresh.
    sql.exec("DELETE FROM seen WHERE id = ? AND exp <= ?", input.id, input.now);
    const inserted = sql.exec("INSERT INTO seen (id, exp) VALUES (?, ?) ON CONFLICT(id) DO NOTHING", input.id, input.exp).rowsWritten;
    if (inserted === 0) return { ok: false, reason: "replayed" };
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > input.exp * 1000) await this.ctx.storage.setAlarm(input.exp * 1000);
    return { ok: true };
  }

  /** Forgets what has expired and wakes again for the next expiry. */
  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM seen WHERE exp <= ?", clock());
    const next = sql.exec<{ exp: number | null }>("SELECT MIN(exp) AS exp FROM seen").one().exp;
    if (next !== null) await this.ctx.storage.setAlarm(next * 1000);
  }
}
