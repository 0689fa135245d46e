import { DurableObject } from "cloudflare:workers";
import { now as clock } from "../workers/clock";

/**
 * ReplayGuard: remembers identifiers until they expire: single-use ones (client assertion `jti`s, DPoP
 * proof `jti`s, attestation PoPs, ID-JAGs) and revoked `client_credentials` access tokens
 * (`workers/tokens/revoked.ts`). Sharded by a hash of the identifier (`workers/replay.ts`), so no single
 * object is hot.
 *
 *   (unseen) ──claim──► seen ──exp passes (alarm)──► (forgotten)
 *                         ├──claim again──► replayed
 *                         └──release (what the claim was for did not happen)──► (unseen)
 *
 * `claim` is one SQLite statement, so two simultaneous claims of one id cannot both succeed.
 */
export class ReplayGuard extends DurableObject<Env> {
  /** The alarm as this instance last read or set it (ms, null: none); undefined until first needed. */
  private alarmAt: number | null | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, exp INTEGER NOT NULL)");
  }

  /** Records `id` as used until `exp` (seconds); `replayed` if it was already recorded and not yet expired. */
  async claim(input: { id: string; exp: number; now: number }): Promise<{ ok: true } | { ok: false; reason: "replayed" }> {
    // One statement: a new id is inserted; an expired record no longer protects anything and is claimed
    // afresh; a live one is left alone and nothing is written.
    const written = this.ctx.storage.sql.exec(
      "INSERT INTO seen (id, exp) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET exp = excluded.exp WHERE seen.exp <= ?",
      input.id,
      input.exp,
      input.now,
    ).rowsWritten;
    if (written === 0) return { ok: false, reason: "replayed" };
    this.alarmAt ??= await this.ctx.storage.getAlarm();
    if (this.alarmAt === null || this.alarmAt > input.exp * 1000) await this.setAlarm(input.exp * 1000);
    return { ok: true };
  }

  /** Forgets `id` at once: its claimer gives it back because the request it authorised came to nothing. */
  async release(input: { id: string }): Promise<{ ok: true }> {
    this.ctx.storage.sql.exec("DELETE FROM seen WHERE id = ?", input.id);
    return { ok: true };
  }

  /** Whether `id` is recorded and not yet expired. Reads only. */
  async seen(input: { id: string; now: number }): Promise<boolean> {
    return this.ctx.storage.sql.exec("SELECT 1 FROM seen WHERE id = ? AND exp > ?", input.id, input.now).toArray().length > 0;
  }

  /** Forgets what has expired and wakes again for the next expiry. */
  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM seen WHERE exp <= ?", clock());
    const next = sql.exec<{ exp: number | null }>("SELECT MIN(exp) AS exp FROM seen").one().exp;
    this.alarmAt = null;
    if (next !== null) await this.setAlarm(next * 1000);
  }

  private async setAlarm(at: number): Promise<void> {
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }
}
