import type { Context } from "hono";
import { now } from "../clock";
import type { Config } from "../config";
import { claimOnce } from "../replay";
import type { AppEnv } from "../types";
import { currentNonce, nonceIsFresh } from "./nonce";
import { checkProof, type DpopProof } from "./proof";

/**
 * The authorization server's acceptance of a DPoP proof, shared by the token endpoint and userinfo:
 * first the proof against this request (`checkProof`, RFC 9449 §4.3), then this server's policy — a
 * recent nonce when DPOP_NONCE is `required` (§8), then the `jti` claimed once in the ReplayGuard
 * (§11.1). The replay claim comes last, so that a refused proof costs no storage. Callers turn a
 * rejection into the error their endpoint speaks (400 at the token endpoint, 401 at userinfo).
 */
export type Acceptance = { ok: true; proof: DpopProof } | { ok: false; error: "invalid_dpop_proof" | "use_dpop_nonce"; description: string };

/** ReplayGuard namespace of DPoP proof identifiers. */
const REPLAY_NAMESPACE = "dpop";

export async function acceptProof(c: Context<AppEnv>, jws: string, accessToken?: string): Promise<Acceptance> {
  const cfg = c.get("cfg");
  const t = now();
  const checked = await checkProof(jws, {
    method: c.req.method,
    // The target URI as configured, never from the Host header (which the client chooses).
    url: `${cfg.ISSUER}${new URL(c.req.url).pathname}`,
    ...(accessToken !== undefined ? { accessToken } : {}),
    now: t,
    window: cfg.DPOP_PROOF_WINDOW,
  });
  if (!checked.ok) return { ok: false, error: "invalid_dpop_proof", description: checked.description };
  const proof = checked.proof;
  const stale = await nonceRefusal(cfg, proof.nonce, t);
  if (stale) return { ok: false, error: "use_dpop_nonce", description: stale };
  if (!(await claimOnce(c.env, REPLAY_NAMESPACE, proof.replay_id, proof.replay_until, t))) {
    return { ok: false, error: "invalid_dpop_proof", description: "the DPoP proof was already used" };
  }
  return { ok: true, proof };
}

/**
 * Why a proof's `nonce` claim is not accepted (`use_dpop_nonce`), or null. With nonces off this server hands
 * none out, so a nonce a proof carries is not one to check.
 */
export async function nonceRefusal(cfg: Config, nonce: unknown, t: number): Promise<string | null> {
  if (cfg.DPOP_NONCE !== "required") return null;
  // RFC 9449 §11.3: "A server MUST NOT accept any DPoP proofs without the nonce claim when a DPoP nonce has been provided to the client."
  if (typeof nonce !== "string") return "the authorization server requires a nonce in the DPoP proof";
  if (!(await nonceIsFresh(cfg.SESSION_SECRET, nonce, t))) return "the DPoP proof's nonce is not a recent one; use the one in the DPoP-Nonce header";
  return null;
}

/** The nonce to put in a `DPoP-Nonce` header now, or undefined when nonces are off (RFC 9449 §8.2). */
export function nonceToProvide(c: Context<AppEnv>): Promise<string> | undefined {
  const cfg = c.get("cfg");
  return cfg.DPOP_NONCE === "required" ? currentNonce(cfg.SESSION_SECRET, now()) : undefined;
}
