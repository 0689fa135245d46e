import type { CodeBinding, GrantData, GrantLifetimes } from "../schemas/grant";

/**
 * The GrantObject's stored record and the result unions of its transitions (`grant.ts`). Kept apart so
 * the object's file is its state machine alone.
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
  /** A retry got the successor: the rotation stands. */
  retried?: true;
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
  | { ok: true; data: GrantData; retry: true; sealed_successor: string }
  | { ok: false; reason: "unknown" | "expired" | "revoked" | "client_mismatch" | "dpop_key_mismatch" | "instance_key_mismatch" | "reused" }
  | { ok: false; reason: "scope_exceeded"; exceeding: string[] }
  | TargetRefused;

/** The `resource` asked for names no one audience of the grant (`audienceRefusal`): nothing changed. */
export type TargetRefused = { ok: false; reason: "target_refused"; description: string };

export type StatusResult = { active: false } | { active: true; data: GrantData; refresh?: { iat: number; exp: number } };
