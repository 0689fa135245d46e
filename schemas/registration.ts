import * as v from "valibot";

/**
 * RFC 7591 §3 initial access token, as the admin API issues it (`POST /admin/initial-access-tokens`).
 * The token itself is shown once; the Registry keeps only its hash.
 */
export const InitialAccessTokenInputSchema = v.object({
  /** Seconds until it stops working. Default: never. */
  expires_in: v.optional(v.pipe(v.number(), v.integer(), v.minValue(60), v.maxValue(31_536_000))),
  /** How many clients it may register. Default: no limit. */
  max_uses: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1_000_000))),
  /** For the operator: who it was given to, and why. */
  description: v.optional(v.pipe(v.string(), v.maxLength(200))),
});

/** An initial access token as stored (under the hash of the token) and as the admin API shows it. */
export interface InitialAccessToken {
  id: string;
  created_at: number;
  expires_at?: number;
  /** Registrations it may still make; absent: no limit. */
  uses_left?: number;
  description?: string;
}

/** What a registration must get past in the Registry, checked in the same transition that creates the client. */
export interface RegistrationGate {
  now: number;
  /** base64url SHA-256 of the presented initial access token; one use is spent on this registration. */
  initial_access_token_hash?: string;
  /** Count this registration against `key` (the caller's network) in the current hour; refuse past `limit`. */
  rate?: { key: string; limit: number };
}

export type CreateClientResult =
  | { ok: true }
  | { ok: false; reason: "exists" | "reserved" | "invalid_initial_access_token" }
  | { ok: false; reason: "rate_limited"; retry_after: number };
