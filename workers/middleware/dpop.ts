import type { MiddlewareHandler } from "hono";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { now } from "../clock";
import { acceptProof, nonceRefusal, nonceToProvide } from "../dpop/accept";
import { readDpopHeader } from "../dpop/proof";
import { InvalidDpopProof, UseDpopNonce } from "../errors";
import type { AppEnv } from "../types";

/**
 * Before client authentication at the token and pushed authorization request endpoints (RFC 9449 §8): a
 * proof without a recent nonce is refused with `use_dpop_nonce` at once, so the client's retry is not
 * refused for a client assertion the first try used up. Every response to a request with a DPoP header,
 * a refused client authentication included, then carries the next nonce (§8.2), so a client always has it.
 */
export const dpopNonce: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = readDpopHeader(c.req.raw.headers);
  const nonce = header.ok && header.proof === undefined ? undefined : await nonceToProvide(c);
  if (nonce === undefined) return next();
  if (header.ok && header.proof !== undefined) {
    const claimed = nonceClaim(header.proof);
    const stale = claimed === null ? null : await nonceRefusal(c.get("cfg"), claimed, now());
    if (stale) {
      const error = new UseDpopNonce(stale);
      error.headers["DPoP-Nonce"] = nonce;
      throw error;
    }
  }
  await next();
  c.res.headers.set("DPoP-Nonce", nonce);
};

/**
 * The `nonce` a DPoP proof claims (undefined: none), read without verifying it; null when the proof is no
 * well-formed DPoP JWT or its nonce is malformed, which the full check after client authentication refuses.
 */
function nonceClaim(proof: string): string | undefined | null {
  try {
    if (decodeProtectedHeader(proof).typ !== "dpop+jwt") return null;
    const { nonce } = decodeJwt(proof);
    return nonce === undefined || (typeof nonce === "string" && nonce !== "") ? nonce : null;
  } catch {
    return null;
  }
}

/**
 * DPoP at the token endpoint (RFC 9449 §5) and the pushed authorization request endpoint (§10.1), after
 * client authentication (and `dpopNonce` before it): a request with a `DPoP` header must carry a valid
 * proof, which then sets `c.get("dpop")` (the key's thumbprint, for `cnf.jkt` or `dpop_jkt`); at the token
 * endpoint a client registered with `dpop_bound_access_tokens` must send one.
 */
export const dpop: MiddlewareHandler<AppEnv> = dpopProof({ requiredForBoundClients: true });

/** The same for an endpoint where DPoP is optional for every client (PAR: `dpop_jkt` is another way). */
export function dpopProof(options: { requiredForBoundClients: boolean }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = readDpopHeader(c.req.raw.headers);
    if (!header.ok) throw new InvalidDpopProof(header.description);
    // In DPoP combined mode client authentication already accepted this very proof (its jti is spent).
    if (header.proof !== undefined && c.get("dpop") === undefined) {
      const accepted = await acceptProof(c, header.proof);
      if (!accepted.ok) throw accepted.error === "use_dpop_nonce" ? new UseDpopNonce(accepted.description) : new InvalidDpopProof(accepted.description);
      c.set("dpop", accepted.proof);
    } else if (header.proof === undefined && options.requiredForBoundClients && c.get("client").dpop_bound_access_tokens) {
      // RFC 9449 §5.2: "the authorization server MUST reject token requests from the client that do not contain the DPoP header."
      throw new InvalidDpopProof("this client is registered with dpop_bound_access_tokens and must send a DPoP proof");
    }
    await next();
  };
}
