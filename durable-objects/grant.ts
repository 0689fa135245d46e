import { DurableObject } from "cloudflare:workers";
import type { CodeBinding, GrantData, GrantLifetimes } from "../schemas/grant";
import {
  ALARM_SLACK,
  type CreateActiveInput,
  deadline,
  extended,
  PREVIOUS,
  PREVIOUS_KEPT,
  type RedeemInput,
  type RedeemResult,
  type RefreshInput,
  type RefreshResult,
  redemptionUntouched,
  refusedTarget,
  rotationUntouched,
  type StatusResult,
  type Stored,
} from "./grant-record";

export type { RedeemResult, RefreshResult, StatusResult } from "./grant-record";

import { now as clock } from "../workers/clock";

/** Storage key of the mark a revocation leaves on an object that holds no grant yet, and how long it stays (s). */
const TOMBSTONE = "revoked-before-creation";
const TOMBSTONE_KEPT = 86_400;

/**
 * GrantObject: one per authorization a user gave a client. Holds the authorization code, the
 * refresh-token family and revocation. Only hashes of codes and refresh tokens are stored.
 *
 *            create                 redeemCode (once)             refresh, extend
 *   (none) ─────────► pending ───────────────────────► active ◄──────────────┐
 *                        │ code expires (alarm)          │  │ ───────────────┘
 *                        ▼                               │  │ family / idle expiry (alarm)
 *                     expired ◄──────────────────────────┘  │
 *                                                           ▼
 *   revoke | code replayed | old refresh token reused ──► revoked
 *   (none) ──createActive (CIBA, device: approved out of band)──► active
 *   active ──undoRedemption──► pending;  active ──undoRotation (the last hand-out)──► active (the presented token current again)
 *
 * The two undos take back a redemption or a rotation whose tokens were never handed out, because the
 * request failed after the transition (a policy refusal that depends on the grant, a signing key that
 * could not be had). Each applies only while nothing has happened since, so a failed request spends nothing.
 *
 * Every transition is one method; each reads and writes only storage (no other awaits), so input
 * gates make it atomic. Methods return results; the caller maps every `reason` to an OAuth error.
 *
 * DPoP (RFC 9449) adds guards, not states: a code issued with `dpop_jkt` redeems only with a proof by
 * that key (§10), and a family bound to a key at redemption or createActive (public clients, §5) refreshes only with a
 * proof by that key. Like a wrong client or verifier, a wrong key changes nothing and revokes nothing.
 * Storage: `grant` holds the record; `previous:<slot>` holds the hash of one retired refresh token,
 * in a ring of PREVIOUS_KEPT slots. A rotation writes the small record and one slot, so its cost does
 * not grow with the family's age; only a token that is neither current nor just rotated (a reuse,
 * or not ours) reads the ring.
 */

export class GrantObject extends DurableObject<Env> {
  private grant: Stored | undefined;
  /** When a revocation reached this object before it held a grant (the owner was deleted in between). */
  private revokedBeforeCreation: number | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.grant = await ctx.storage.get<Stored>("grant");
      this.revokedBeforeCreation = await ctx.storage.get<number>(TOMBSTONE);
    });
  }

  /** (none) → pending: stores the grant and its code. */
  async create(input: {
    data: GrantData;
    code: CodeBinding;
    lifetimes: GrantLifetimes;
    now: number;
  }): Promise<{ ok: true } | { ok: false; reason: "exists" | "revoked" }> {
    if (this.grant) return { ok: false, reason: "exists" };
    if (this.revokedBeforeCreation !== undefined) return { ok: false, reason: "revoked" };
    await this.save({
      state: "pending",
      data: input.data,
      created_at: input.now,
      code: input.code,
      refresh: null,
      rotated: null,
      retired: 0,
      revoked_jtis: {},
      ...input.lifetimes,
    });
    return { ok: true };
  }

  /**
   * (none) → active: a grant the user approved out of band (CIBA, device authorization), so there is
   * no code; the first refresh token, if any, is issued at once. An empty code hash matches no code.
   * The family is bound to the keys given, as a redemption binds it, so `refresh` enforces them alike.
   */
  async createActive(input: CreateActiveInput): Promise<{ ok: true } | { ok: false; reason: "exists" | "revoked" }> {
    if (this.grant) return { ok: false, reason: "exists" };
    if (this.revokedBeforeCreation !== undefined) return { ok: false, reason: "revoked" };
    const refresh = input.data.refresh && input.refresh_hash ? { hash: input.refresh_hash, issued_at: input.now, last_used_at: input.now } : null;
    await this.save({
      state: "active",
      data: input.data,
      created_at: input.now,
      code: { hash: "", expires_at: input.now, code_challenge: "", redirect_uri: "", redeemed_at: input.now },
      refresh,
      // Without a refresh token there is nothing to bind, as in redeemCode.
      ...(refresh && input.dpop_jkt !== undefined ? { dpop_jkt: input.dpop_jkt } : {}),
      ...(refresh && input.instance_jkt !== undefined ? { instance_jkt: input.instance_jkt } : {}),
      rotated: null,
      retired: 0,
      revoked_jtis: {},
      ...input.lifetimes,
    });
    return { ok: true };
  }

  /**
   * active → active: the user approved a step-up request (README "Asking for more access"), so the
   * grant's scope and resources grow; its refresh tokens refresh the wider scope from now on.
   */
  async extend(input: {
    client_id: string;
    sub: string;
    scope: string[];
    resources: string[];
    now: number;
  }): Promise<{ ok: true; data: GrantData } | { ok: false; reason: "unknown" | "client_mismatch" | "user_mismatch" | "revoked" | "expired" }> {
    const g = this.grant;
    if (!g) return { ok: false, reason: "unknown" };
    if (g.data.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    if (g.data.sub !== input.sub) return { ok: false, reason: "user_mismatch" };
    if (g.state === "revoked") return { ok: false, reason: "revoked" };
    if (g.state !== "active" || input.now >= g.expires_at) return { ok: false, reason: "expired" };
    g.data = extended(g.data, input.scope, input.resources);
    await this.save(g);
    return { ok: true, data: g.data };
  }

  /**
   * pending → active: redeems the code (OAuth 2.1 §4.1.3). A second otherwise-valid redemption
   * revokes the grant ("SHOULD revoke ... tokens previously issued based on that authorization code");
   * a replay with the wrong client, verifier or DPoP key does not, so it cannot be used to log a user out.
   */
  async redeemCode(input: RedeemInput): Promise<RedeemResult> {
    const g = this.grant;
    if (!g || g.code.hash !== input.code_hash) return { ok: false, reason: "unknown" };
    if (g.data.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    if (g.code.code_challenge !== input.code_verifier_s256) return { ok: false, reason: "pkce_mismatch" };
    if (input.redirect_uri !== undefined && input.redirect_uri !== g.code.redirect_uri) return { ok: false, reason: "redirect_uri_mismatch" };
    // RFC 9449 §10: if the proof's thumbprint does not match dpop_jkt, the server "MUST reject the request".
    if (g.code.dpop_jkt !== undefined && g.code.dpop_jkt !== input.dpop_jkt) return { ok: false, reason: "dpop_jkt_mismatch" };
    if (g.state === "revoked") return { ok: false, reason: "revoked" };
    if (g.state === "active") {
      await this.revokeWith(g, "authorization_code_replayed");
      return { ok: false, reason: "replayed" };
    }
    if (g.state === "expired" || input.now >= g.code.expires_at) return { ok: false, reason: "expired" };
    // A refused resource leaves the code unspent, so the client can correct its request and redeem it.
    const targetRefused = refusedTarget(g, input.resource, this.env.ISSUER);
    if (targetRefused) return targetRefused;
    g.state = "active";
    g.code = { ...g.code, redeemed_at: input.now };
    const refresh_issued = g.data.refresh && input.refresh_hash !== undefined;
    if (refresh_issued && input.refresh_hash) g.refresh = { hash: input.refresh_hash, issued_at: input.now, last_used_at: input.now };
    if (refresh_issued && input.bind_refresh_to_key && input.dpop_jkt !== undefined) g.dpop_jkt = input.dpop_jkt;
    if (refresh_issued && input.instance_jkt !== undefined) g.instance_jkt = input.instance_jkt;
    await this.save(g);
    return { ok: true, data: g.data, refresh_issued };
  }

  /**
   * active → active: rotates the refresh token (OAuth 2.1 §4.3.1). A retry of the token just rotated,
   * within the reuse window and before its successor was ever used, gets the same successor back;
   * any other former token is reuse, and revokes the grant (RFC 9700 §4.14.2).
   */
  async refresh(input: RefreshInput): Promise<RefreshResult> {
    const g = this.grant;
    if (!g) return { ok: false, reason: "unknown" };
    const isCurrent = g.refresh?.hash === input.token_hash;
    const isRotated = g.rotated?.hash === input.token_hash;
    const isPrevious = !isCurrent && !isRotated && (await this.wasRetired(input.token_hash));
    if (!isCurrent && !isRotated && !isPrevious) return { ok: false, reason: "unknown" };
    // A token bound to another client is not evidence of theft from this family's holder.
    if (g.data.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    // RFC 9449 §5: "such a client MUST present a DPoP proof for the same key that was used to obtain the refresh
    // token". Someone holding the token without the key is refused before reuse detection, so cannot revoke.
    if (g.dpop_jkt !== undefined && g.dpop_jkt !== input.dpop_jkt) return { ok: false, reason: "dpop_key_mismatch" };
    // draft-ietf-oauth-attestation-based-client-auth-11 §11: likewise for the Client Instance Key.
    if (g.instance_jkt !== undefined && g.instance_jkt !== input.instance_jkt) return { ok: false, reason: "instance_key_mismatch" };
    if (g.state === "revoked") return { ok: false, reason: "revoked" };
    if (g.state !== "active" || input.now >= g.expires_at) return { ok: false, reason: "expired" };
    // A refused scope or resource must leave everything as it was: the presented token stays the live one.
    const exceeding = input.scope?.filter((s) => !g.data.scope.includes(s)) ?? [];
    const refused = exceeding.length ? ({ ok: false, reason: "scope_exceeded", exceeding } as const) : refusedTarget(g, input.resource, this.env.ISSUER);
    if (isRotated && g.rotated && g.refresh && input.now - g.rotated.rotated_at < g.reuse_window) {
      if (refused) return refused;
      // One more request holds the successor until its answer is out; if that fails, its undo gives it back.
      g.rotated.handouts = (g.rotated.handouts ?? 1) + 1;
      await this.save(g);
      return { ok: true, data: g.data, retry: true, sealed_successor: g.rotated.sealed_successor, successor_hash: g.refresh.hash };
    }
    if (!isCurrent || !g.refresh) {
      await this.revokeWith(g, "refresh_token_reused");
      return { ok: false, reason: "reused" };
    }
    if (input.now - g.refresh.last_used_at >= g.idle_ttl) return { ok: false, reason: "expired" };
    if (refused) return refused;
    const retiring = g.rotated?.hash;
    // RFC 9449 §5: a public client's refresh token issued with a DPoP proof is bound to its key, so a family
    // that was not bound yet is bound from this rotation on.
    const binds = input.bind_refresh_to_key === true && input.dpop_jkt !== undefined && g.dpop_jkt === undefined;
    g.rotated = { ...g.refresh, rotated_at: input.now, sealed_successor: input.sealed_successor, handouts: 1, ...(binds ? { bound: true as const } : {}) };
    g.refresh = { hash: input.successor_hash, issued_at: input.now, last_used_at: input.now };
    if (binds) g.dpop_jkt = input.dpop_jkt;
    await this.save(g, retiring);
    return { ok: true, data: g.data, retry: false };
  }

  /**
   * active → pending: takes back a redemption whose tokens were never handed out, so the code can be
   * redeemed again. Only while nothing has happened since: a replay that revoked the grant meanwhile stays.
   */
  async undoRedemption(input: { code_hash: string; redeemed_at: number }): Promise<{ ok: true } | { ok: false; reason: "changed" }> {
    const g = this.grant;
    if (!g || !redemptionUntouched(g, input)) return { ok: false, reason: "changed" };
    const { redeemed_at: _, ...code } = g.code;
    const { dpop_jkt: _d, instance_jkt: _i, ...rest } = g;
    await this.save({ ...rest, state: "pending", code, refresh: null });
    return { ok: true };
  }

  /**
   * active → active: a request given the successor failed before handing it out. The last such request
   * (no other holds it: `Rotated.handouts`) takes the rotation back, so the presented token is the current
   * one again, as used as it was. Only while the successor is unused. The token the rotation retired into
   * the ring stays there: its successor had been presented.
   */
  async undoRotation(input: { token_hash: string; successor_hash: string }): Promise<{ ok: true } | { ok: false; reason: "changed" }> {
    const g = this.grant;
    const r = g?.rotated;
    if (!g || !r || !rotationUntouched(g, input)) return { ok: false, reason: "changed" };
    const others = (r.handouts ?? 1) - 1;
    if (others > 0) {
      r.handouts = others;
      await this.save(g);
      return { ok: true };
    }
    g.refresh = { hash: r.hash, issued_at: r.issued_at ?? r.rotated_at, last_used_at: r.last_used_at ?? r.rotated_at };
    if (r.bound) delete g.dpop_jkt;
    g.rotated = null;
    await this.save(g);
    return { ok: true };
  }

  /**
   * Whether tokens of this grant are still good: for an access token, also that its `jti` was not
   * revoked; for a refresh token, that it is the family's current one and not idle-expired.
   */
  async status(input: { jti?: string; refresh_hash?: string; now: number }): Promise<StatusResult> {
    const g = this.grant;
    if (g?.state !== "active" || input.now >= g.expires_at) return { active: false };
    if (input.jti && g.revoked_jtis[input.jti] !== undefined) return { active: false };
    if (input.refresh_hash !== undefined) {
      const r = g.refresh;
      if (!r || r.hash !== input.refresh_hash || input.now - r.last_used_at >= g.idle_ttl) return { active: false };
      return { active: true, data: g.data, refresh: { iat: r.issued_at, exp: Math.min(g.expires_at, r.last_used_at + g.idle_ttl) } };
    }
    return { active: true, data: g.data };
  }

  /** RFC 7009 for a refresh token of this grant: revokes the whole grant if it belongs to the client. */
  async revokeRefreshToken(input: { token_hash: string; client_id: string }): Promise<{ ok: true } | { ok: false; reason: "unknown" | "client_mismatch" }> {
    const g = this.grant;
    const known = g && (g.refresh?.hash === input.token_hash || g.rotated?.hash === input.token_hash || (await this.wasRetired(input.token_hash)));
    if (!g || !known) return { ok: false, reason: "unknown" };
    if (g.data.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    if (g.state !== "revoked") await this.revokeWith(g, "revoked_by_client");
    return { ok: true };
  }

  /** RFC 7009 for an access token of this grant: denies that one token until it expires. */
  async revokeAccessToken(input: {
    jti: string;
    exp: number;
    client_id: string;
    now: number;
  }): Promise<{ ok: true } | { ok: false; reason: "unknown" | "client_mismatch" }> {
    const g = this.grant;
    if (!g) return { ok: false, reason: "unknown" };
    if (g.data.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    for (const [jti, exp] of Object.entries(g.revoked_jtis)) if (exp <= input.now) delete g.revoked_jtis[jti];
    g.revoked_jtis[input.jti] = input.exp;
    await this.save(g);
    return { ok: true };
  }

  /**
   * any → revoked (admin deletion of the client or user, or a security event). Reaching an object before its
   * grant was created (the grant is indexed first, then created), it leaves a mark that refuses the creation.
   */
  async revoke(reason: string): Promise<{ ok: true }> {
    if (this.grant && this.grant.state !== "revoked") await this.revokeWith(this.grant, reason);
    if (!this.grant && this.revokedBeforeCreation === undefined) {
      const at = clock();
      this.revokedBeforeCreation = at;
      await this.ctx.storage.put(TOMBSTONE, at);
      await this.ctx.storage.setAlarm((at + TOMBSTONE_KEPT) * 1000);
    }
    return { ok: true };
  }

  /** Expiry: pending codes and idle or finished families end here; the record is then deleted. */
  override async alarm(): Promise<void> {
    const g = this.grant;
    if (!g) {
      // The mark of a revocation that came first, kept long past any creation that could follow it.
      if (this.revokedBeforeCreation !== undefined) await this.ctx.storage.deleteAll();
      this.revokedBeforeCreation = undefined;
      return;
    }
    const now = clock();
    const due = deadline(g);
    if (due !== null && due > now) {
      // Fired before the deadline, which moved since: no alarm is set now, so `save` sets it anew.
      g.alarm_at = undefined;
      await this.save(g);
      return;
    }
    if (g.state === "pending" || g.state === "active") g.state = "expired";
    await this.forget(g);
  }

  private async revokeWith(g: Stored, reason: string): Promise<void> {
    // The family's hashes stay, so a later presentation of any of its tokens answers "revoked".
    g.state = "revoked";
    g.revoked_reason = reason;
    await this.save(g);
  }

  /** Whether `hash` is one of the family's retired refresh tokens (reads the whole ring: the rare path). */
  private async wasRetired(hash: string): Promise<boolean> {
    const ring = await this.ctx.storage.list<string>({ prefix: PREVIOUS });
    for (const retired of ring.values()) if (retired === hash) return true;
    return false;
  }

  /**
   * Writes the record, and `retiring` into the ring slot of the oldest retired token, in one put; moves
   * the alarm when the deadline came earlier or has moved more than ALARM_SLACK later. An alarm that
   * fires before the deadline re-arms itself (`alarm()`), so a rotation, which moves the idle deadline
   * a little later, leaves the alarm where it is and writes nothing but the record.
   */
  private async save(g: Stored, retiring?: string): Promise<void> {
    this.grant = g;
    const due = deadline(g);
    const rearm = due !== null && (g.alarm_at === undefined || due < g.alarm_at || due - g.alarm_at > ALARM_SLACK);
    if (rearm) g.alarm_at = due;
    const writes: Record<string, unknown> = {};
    if (retiring !== undefined) writes[`${PREVIOUS}${g.retired++ % PREVIOUS_KEPT}`] = retiring;
    writes.grant = g;
    await this.ctx.storage.put(writes);
    if (rearm) await this.ctx.storage.setAlarm(due * 1000);
  }

  private async forget(g: Stored): Promise<void> {
    const registry = this.env.REGISTRY.get(this.env.REGISTRY.idFromName("registry"));
    await registry.forgetGrant({ grant_id: this.ctx.id.toString(), sub: g.data.sub, client_id: g.data.client_id });
    await this.ctx.storage.deleteAll();
    await this.ctx.storage.deleteAlarm();
    this.grant = undefined;
  }
}
