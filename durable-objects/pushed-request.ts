import { DurableObject } from "cloudflare:workers";
import { now as clock } from "../workers/clock";

/**
 * PushedRequest: one per pushed authorization request (RFC 9126). Holds the parameters a client
 * pushed, under the hash of the `request_uri` handle that names this object, until the code is issued.
 *
 *            push               open (first browser)          consume (code issued)
 *   (none) ───────► pushed ───────────────────────► opened ───────────────────────► used
 *                     │                               │ ▲ open again (same browser: a reload)
 *                     │ expires_at (alarm)            │ └─┘
 *                     ▼                               ▼ keep_until (alarm)
 *                 (deleted) ◄─────────────────────────┴──────────────────────────── (deleted)
 *
 * The `request_uri` may be opened until `expires_at` (RFC 9126 §2.2 `expires_in`), and only by the
 * browser that opened it first: a reload works, another browser does not. `consume` happens when the
 * authorization code is issued, so one push yields at most one code; the record outlives `expires_at`
 * by the interaction's lifetime so that a user who takes a while to sign in can still finish.
 * Every transition reads and writes storage only, so input gates make each one atomic.
 */

interface Stored {
  /** base64url SHA-256 of the handle; the handle itself is never stored. */
  hash: string;
  client_id: string;
  /** The pushed parameters, form-encoded, without client authentication parameters. */
  params: string;
  /** End of the `request_uri`'s life for the authorization endpoint. */
  expires_at: number;
  /** Hash of the browser binding of the first browser that opened it. */
  browser?: string;
  used_at?: number;
  /** The record is deleted at this time. */
  keep_until: number;
}

/** `open`: the pushed parameters, or why this browser may not have them. */
export type OpenResult = { ok: true; params: string } | { ok: false; reason: "unknown" | "client_mismatch" | "expired" | "used" | "other_browser" };
/** `consume`: whether this answer to the request is the one. */
export type ConsumeResult = { ok: true } | { ok: false; reason: "unknown" | "expired" | "used" | "other_browser" };

export class PushedRequest extends DurableObject<Env> {
  private request: Stored | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.request = await ctx.storage.get<Stored>("request");
    });
  }

  /** (none) → pushed. */
  async push(input: { hash: string; client_id: string; params: string; expires_at: number }): Promise<{ ok: true } | { ok: false; reason: "exists" }> {
    if (this.request) return { ok: false, reason: "exists" };
    await this.save({ hash: input.hash, client_id: input.client_id, params: input.params, expires_at: input.expires_at, keep_until: input.expires_at });
    return { ok: true };
  }

  /**
   * pushed → opened, or opened → opened for the same browser. RFC 9126 §4: "Authorization servers
   * SHOULD treat request_uri values as one-time use but MAY allow for duplicate requests due to a user
   * reloading/refreshing their user agent. An expired request_uri MUST be rejected as invalid."
   * A wrong `client_id` changes nothing, so it cannot take the request away from its browser.
   */
  async open(input: { hash: string; client_id: string; browser: string; interaction_ttl: number; now: number }): Promise<OpenResult> {
    const r = this.request;
    if (!r || r.hash !== input.hash) return { ok: false, reason: "unknown" };
    if (r.client_id !== input.client_id) return { ok: false, reason: "client_mismatch" };
    if (r.used_at !== undefined) return { ok: false, reason: "used" };
    if (input.now >= r.expires_at) return { ok: false, reason: "expired" };
    if (r.browser !== undefined && r.browser !== input.browser) return { ok: false, reason: "other_browser" };
    // Each open starts an interaction of its own; the record lasts as long as the latest one.
    await this.save({ ...r, browser: input.browser, keep_until: Math.max(r.keep_until, input.now + input.interaction_ttl) });
    return { ok: true, params: r.params };
  }

  /** opened → used, in the browser that opened it: the authorization code is being issued. */
  async consume(input: { hash: string; browser: string; now: number }): Promise<ConsumeResult> {
    const r = this.request;
    if (!r || r.hash !== input.hash || r.browser === undefined) return { ok: false, reason: "unknown" };
    if (r.used_at !== undefined) return { ok: false, reason: "used" };
    if (r.browser !== input.browser) return { ok: false, reason: "other_browser" };
    if (input.now >= r.keep_until) return { ok: false, reason: "expired" };
    await this.save({ ...r, used_at: input.now });
    return { ok: true };
  }

  /** Expiry: the record is deleted once `keep_until` has passed. */
  override async alarm(): Promise<void> {
    const r = this.request;
    if (!r) return;
    if (r.keep_until > clock()) {
      await this.ctx.storage.setAlarm(r.keep_until * 1000);
      return;
    }
    await this.ctx.storage.deleteAll();
    await this.ctx.storage.deleteAlarm();
    this.request = undefined;
  }

  private async save(r: Stored): Promise<void> {
    this.request = r;
    await this.ctx.storage.put("request", r);
    await this.ctx.storage.setAlarm(r.keep_until * 1000);
  }
}
