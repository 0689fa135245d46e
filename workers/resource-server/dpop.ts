import type { Context } from "hono";
import { checkProof, DPOP_ALGS, readDpopHeader } from "../dpop/proof";

export { DPOP_ALGS };

/**
 * DPoP (RFC 9449) at a resource server. A DPoP-bound token (one with `cnf.jkt`) is always verified: it
 * must come as `Authorization: DPoP <token>` with a proof for this request, signed by the bound key and
 * carrying the token's hash (`ath`). These options tune how.
 */
export interface DpopOptions {
  /** Proof algorithms accepted, and offered in `algs` challenges. Default ES256 ES384 EdDSA Ed25519 RS256 PS256. */
  algorithms?: readonly string[];
  /** How far (seconds) a proof's `iat` may lie from the server's clock, either way. Default 60. */
  proofWindowSeconds?: number;
  /**
   * Replay protection (RFC 9449 §11.1), which the kit cannot do alone: it has no storage. Called once per
   * proof that passed every other check, with a fixed-length identifier of the proof (base64url SHA-256 of
   * its key thumbprint and `jti`) and the time (seconds since the epoch) until which it could still pass.
   * Record the id and return true the first time; return false if it was recorded before. It must be
   * consistent across every isolate and location serving this resource — a Durable Object keyed by the id
   * (Latchkey's ReplayGuard is one), not isolate memory. Without it, a captured proof can be replayed
   * against the same method and URL, with the same token, until its `iat` leaves the window.
   */
  claimProof?: (id: string, until: number) => Promise<boolean>;
  /** RFC 9728 `dpop_bound_access_tokens_required`: refuse tokens that are not DPoP-bound. Default false. */
  requireDpop?: boolean;
  /** The time, seconds since the epoch. Default: the system clock. */
  now?: () => number;
}

export type ProofCheck = { ok: true } | { ok: false; error: "invalid_dpop_proof" | "invalid_token"; description: string };

/**
 * RFC 9449 §7.1: for a DPoP-bound token "a resource server MUST check that a DPoP proof was also received
 * in the DPoP header field of the HTTP request, check the DPoP proof according to the rules in Section 4.3,
 * and check that the public key of the DPoP proof matches the public key to which the access token is
 * bound". `htu` is compared with this resource's configured origin and the request path — never with the
 * Host header, which the client chooses.
 */
export async function checkDpop(c: Context, resource: string, token: string, jkt: string, options: DpopOptions = {}): Promise<ProofCheck> {
  const header = readDpopHeader(c.req.raw.headers);
  if (!header.ok) return { ok: false, error: "invalid_dpop_proof", description: header.description };
  if (header.proof === undefined) return { ok: false, error: "invalid_dpop_proof", description: "a DPoP proof is required with a DPoP-bound access token" };
  const checked = await checkProof(header.proof, {
    method: c.req.method,
    url: `${new URL(resource).origin}${new URL(c.req.url).pathname}`,
    accessToken: token,
    now: options.now?.() ?? Math.floor(Date.now() / 1000),
    window: options.proofWindowSeconds ?? 60,
    algorithms: options.algorithms ?? DPOP_ALGS,
  });
  if (!checked.ok) return { ok: false, error: "invalid_dpop_proof", description: checked.description };
  // RFC 9449 §6: "Resource servers supporting DPoP MUST ensure that the public key from the DPoP proof matches the one bound to the access token."
  if (checked.proof.jkt !== jkt)
    return { ok: false, error: "invalid_token", description: "the DPoP proof is not signed by the key the access token is bound to" };
  if (options.claimProof && !(await options.claimProof(checked.proof.replay_id, checked.proof.replay_until))) {
    return { ok: false, error: "invalid_dpop_proof", description: "the DPoP proof was already used" };
  }
  return { ok: true };
}
