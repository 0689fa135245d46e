import { Hono } from "hono";
import { now } from "../clock";
import { InvalidClient, InvalidRequest } from "../errors";
import { grantStub } from "../grants/issue";
import { attestationChallenge, clientAuth } from "../middleware/client-auth";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { inspectToken } from "../tokens/inspect";
import type { AppEnv } from "../types";

/**
 * RFC 7662 token introspection for authenticated (confidential) callers, typically resource servers.
 * Any token that is not active — unknown, expired, revoked, of a revoked grant — is `{"active":false}`
 * and nothing more (§2.2), as is a token the caller "is not allowed to introspect" (§2.2, §4): an access
 * token is described to its own client and to clients an administrator registered (resource servers are);
 * a refresh token, which only its client ever sends, to its own client only.
 */
export const introspect = new Hono<AppEnv>();

introspect.post("/introspect", noStore, attestationChallenge, formBody, clientAuth, async (c) => {
  const params = c.get("params");
  const cfg = c.get("cfg");
  const auth_method = c.get("auth_method");
  // RFC 7662 §2.1: the endpoint MUST require authorization; a public client proves nothing.
  if (auth_method === "none") throw new InvalidClient("introspection requires client authentication");
  const token = params.get("token");
  if (!token) throw new InvalidRequest("token is required");
  const t = now();
  const client = c.get("client");
  const inspected = await inspectToken(c.env, cfg, token, t);
  if (inspected.kind === "access_token" && (client.registered_by === "admin" || inspected.claims.client_id === client.client_id)) {
    const { claims } = inspected;
    return c.json({
      active: true,
      iss: claims.iss,
      sub: claims.sub,
      aud: claims.aud,
      client_id: claims.client_id,
      // RFC 9449 §6.2: "If the token_type member is included in the introspection response, it MUST contain the value DPoP."
      // draft-richer-oauth-httpsig §4: a signature-bound token's type is httpsig.
      token_type: claims.cnf?.jkt ? "DPoP" : claims.cnf?.jwk ? "httpsig" : "Bearer",
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      ...(claims.scope ? { scope: claims.scope } : {}),
      ...(claims.auth_time !== undefined ? { auth_time: claims.auth_time } : {}),
      ...(claims.cnf?.jkt ? { cnf: { jkt: claims.cnf.jkt } } : claims.cnf?.jwk ? { cnf: { jwk: claims.cnf.jwk } } : {}),
    });
  }
  if (inspected.kind === "refresh_token") {
    const status = await grantStub(c.env, inspected.grant_id)?.status({ refresh_hash: inspected.hash, now: t });
    if (status?.active && status.refresh && status.data.client_id === client.client_id) {
      return c.json({
        active: true,
        iss: cfg.ISSUER,
        sub: status.data.sub,
        client_id: status.data.client_id,
        scope: status.data.scope.join(" "),
        iat: status.refresh.iat,
        exp: status.refresh.exp,
        ...(status.data.resources.length ? { aud: status.data.resources.length === 1 ? status.data.resources[0] : status.data.resources } : {}),
      });
    }
  }
  return c.json({ active: false });
});
introspect.all("/introspect", methodNotAllowed("POST"));
