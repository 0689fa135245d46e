import type { MiddlewareHandler } from "hono";
import { acceptProof, nonceToProvide } from "../dpop/accept";
import { readDpopHeader } from "../dpop/proof";
import { InvalidDpopProof, OAuthError, UseDpopNonce } from "../errors";
import type { AppEnv } from "../types";

/**
 * DPoP at the token endpoint (RFC 9449 §5) and the pushed authorization request endpoint (§10.1), after
 * client authentication: a request with a `DPoP` header must carry a valid proof, which then sets
 * `c.get("dpop")` (the key's thumbprint, for `cnf.jkt` or `dpop_jkt`); at the token endpoint a client
 * registered with `dpop_bound_access_tokens` must send one. Every response to a request that carried a
 * DPoP header, error or not, gets a fresh `DPoP-Nonce` when nonces are on (§8.2), so a client always has
 * the next one and retries at most once.
 */
export const dpop: MiddlewareHandler<AppEnv> = dpopProof({ requiredForBoundClients: true });

/** The same for an endpoint where DPoP is optional for every client (PAR: `dpop_jkt` is another way). */
export function dpopProof(options: { requiredForBoundClients: boolean }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = readDpopHeader(c.req.raw.headers);
    const nonce = header.ok && header.proof === undefined ? undefined : await nonceToProvide(c);
    try {
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
    } catch (error) {
      if (nonce !== undefined && error instanceof OAuthError) error.headers["DPoP-Nonce"] = nonce;
      throw error;
    }
    await next();
    if (nonce !== undefined) c.header("DPoP-Nonce", nonce);
  };
}
