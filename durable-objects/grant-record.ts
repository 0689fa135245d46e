import type { CodeBinding, GrantData, GrantLifetimes } from "../schemas/grant";
import { audienceRefusal, userinfoAudience } from "../workers/policy/scope";

/**
 * The GrantObject's stored record, the inputs and result unions of its transitions, and the pure rules
 * they apply (`grant.ts`). Kept apart so the object's file is its state machine alone.
 */
export type State = "pending" | "active" | "revoked" | "expired";

export interface RefreshSlot {
  hash: string;
  issued_at: number;
  last_used_at: number;
}

export interface Rotated {
  /** Hash of the refresh token that was just replaced. */
  hash: string;
  /** Its slot's times, for `undoRotation` (absent from records written before it existed). */
  issued_at?: number;
  last_used_at?: number;
  rotated_at: number;
  /** The successor token, encrypted under a key derived from the replaced token (only its holder can open it). */
  sealed_successor: string;
  /**
   * Requests given the successor whose answers may yet fail: the rotation's own, and one more per retry in the
   * reuse window. Each failure's `undoRotation` takes one back; the last one taken back restores the presented
   * token. A request that succeeded never takes its hand-out back, so then the rotation stands. (Absent: 1.)
   */
  handouts?: number;
  /** This rotation bound the family to a DPoP key (`undoRotation` unbinds it). */
  bound?: true;
}

export interface Stored extends GrantLifetimes {
  state: State;
  data: GrantData;
  created_at: number;
  code: CodeBinding & { redeemed_at?: number };
  refresh: RefreshSlot | null;
  rotated: Rotated | null;
  /** RFC 9449 §5: the thumbprint of the DPoP key every refresh of this family must prove (public clients). */
  dpop_jkt?: string;
  /**
   * draft-ietf-oauth-attestation-based-client-auth-11 §11: refresh tokens issued under attestation are
   * bound to the Client Instance Key; every refresh must re-present an attestation with this key's thumbprint.
   */
  instance_jkt?: string;
  /** How many refresh tokens of this family have been retired into the `previous:` ring. */
  retired: number;
  /** When the alarm is set for (seconds); it may lie up to ALARM_SLACK before the deadline. */
  alarm_at?: number;
  /** Revoked access-token ids until their expiry. */
  revoked_jtis: Record<string, number>;
  revoked_reason?: string;
}

/** How far (seconds) the deadline may move past the set alarm before a write moves the alarm too. */
export const ALARM_SLACK = 3600;

/** How many former refresh-token hashes a family remembers for reuse detection. */
export const PREVIOUS_KEPT = 500;
export const PREVIOUS = "previous:";

export type RedeemResult =
  | { ok: true; data: GrantData; refresh_issued: boolean }
  | {
      ok: false;
      reason: "unknown" | "expired" | "revoked" | "client_mismatch" | "pkce_mismatch" | "redirect_uri_mismatch" | "dpop_jkt_mismatch" | "replayed";
    }
  | TargetRefused;

export type RefreshResult =
  | { ok: true; data: GrantData; retry: false }
  | { ok: true; data: GrantData; retry: true; sealed_successor: string; successor_hash: string }
  | { ok: false; reason: "unknown" | "expired" | "revoked" | "client_mismatch" | "dpop_key_mismatch" | "instance_key_mismatch" | "reused" }
  | { ok: false; reason: "scope_exceeded"; exceeding: string[] }
  | TargetRefused;

/** The `resource` asked for names no one audience of the grant (`audienceRefusal`): nothing changed. */
export type TargetRefused = { ok: false; reason: "target_refused"; description: string };

export type StatusResult = { active: false } | { active: true; data: GrantData; refresh?: { iat: number; exp: number } };

/** `createActive`: a grant approved out of band (CIBA, device authorization). */
export interface CreateActiveInput {
  data: GrantData;
  refresh_hash?: string;
  /** RFC 9449 §5: the DPoP key every refresh of this family must prove (the caller decides: public clients only). */
  dpop_jkt?: string;
  /** Thumbprint of the Client Instance Key of the request's client attestation, if it had one: binds the refresh tokens. */
  instance_jkt?: string;
  lifetimes: GrantLifetimes;
  now: number;
}

/** `redeemCode`: what the token request brings to redeem the code. */
export interface RedeemInput {
  code_hash: string;
  client_id: string;
  code_verifier_s256: string;
  redirect_uri?: string;
  refresh_hash?: string;
  /** RFC 9449: thumbprint of the key that signed the token request's DPoP proof, if it had one. */
  dpop_jkt?: string;
  /** RFC 9449 §5: bind the refresh-token family to `dpop_jkt` (the caller decides: public clients only). */
  bind_refresh_to_key?: boolean;
  /** Thumbprint of the Client Instance Key of the request's client attestation, if it had one: binds the refresh tokens. */
  instance_jkt?: string;
  /** RFC 8707 `resource` values of the request: checked before the code is spent. */
  resource: string[];
  now: number;
}

/** `refresh`: what the token request brings to rotate the refresh token. */
export interface RefreshInput {
  token_hash: string;
  client_id: string;
  successor_hash: string;
  sealed_successor: string;
  /** The narrower scope the client asked for (OAuth 2.1 §4.3.1), if any. */
  scope?: string[];
  /** RFC 9449: thumbprint of the key that signed the refresh request's DPoP proof, if it had one. */
  dpop_jkt?: string;
  /** RFC 9449 §5: bind a family not bound yet to `dpop_jkt` (the caller decides: public clients only). */
  bind_refresh_to_key?: boolean;
  /** Thumbprint of the Client Instance Key of the request's client attestation, if it had one. */
  instance_jkt?: string;
  /** RFC 8707 `resource` values of the request. */
  resource: string[];
  now: number;
}

/** When a grant next needs the alarm, or null when it is finished. */
export function deadline(g: Stored): number | null {
  if (g.state === "pending") return g.code.expires_at;
  if (g.state === "active") return Math.min(g.expires_at, (g.refresh?.last_used_at ?? g.created_at) + g.idle_ttl);
  // A revoked grant is kept until its family would have ended, so replays still answer "revoked".
  if (g.state === "revoked") return g.expires_at;
  return null;
}

/** RFC 8707 §2.2: the refusal when `resource` names no one audience of the grant (the issuer counts, for a grant with openid), else null. */
export function refusedTarget(g: Stored, resource: readonly string[], issuer: string): TargetRefused | null {
  const description = audienceRefusal(g.data.resources, resource, userinfoAudience(g.data.scope, issuer));
  return description ? { ok: false, reason: "target_refused", description } : null;
}

/** Whether `g` is still as the redemption at `redeemed_at` left it: no replay, no rotation, its refresh token unused. */
export function redemptionUntouched(g: Stored, input: { code_hash: string; redeemed_at: number }): boolean {
  return (
    g.state === "active" &&
    g.code.hash === input.code_hash &&
    g.code.redeemed_at === input.redeemed_at &&
    g.rotated === null &&
    (g.refresh === null || g.refresh.last_used_at === input.redeemed_at)
  );
}

/** Whether `g` is still as the rotation of `token_hash` left it: its successor unused. */
export function rotationUntouched(g: Stored, input: { token_hash: string; successor_hash: string }): boolean {
  const r = g.rotated;
  return (
    g.state === "active" &&
    r?.hash === input.token_hash &&
    g.refresh?.hash === input.successor_hash &&
    g.refresh.issued_at === r.rotated_at &&
    g.refresh.last_used_at === r.rotated_at
  );
}

/**
 * The grant's data after a step-up approved `scope` for `resources`: the new scopes apply to those resources
 * only (`resource_scopes`), every resource keeping what it had before.
 */
export function extended(data: GrantData, scope: readonly string[], resources: readonly string[]): GrantData {
  const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])];
  const byResource: Record<string, string[]> = data.resource_scopes
    ? { ...data.resource_scopes }
    : Object.fromEntries(data.resources.map((r) => [r, data.scope]));
  for (const r of resources) byResource[r] = union(byResource[r] ?? [], scope);
  return { ...data, scope: union(data.scope, scope), resources: union(data.resources, resources), resource_scopes: byResource };
}
