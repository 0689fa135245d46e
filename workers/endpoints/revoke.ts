import { Hono } from "hono";
import { now } from "../clock";
import { InvalidRequest } from "../errors";
import { grantStub } from "../grants/issue";
import { attestationChallenge, clientAuth } from "../middleware/client-auth";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { audit } from "../observe/audit";
import { verifyAccessToken } from "../tokens/access-token";
import { parseHandle } from "../tokens/handles";
import { revokeClientToken } from "../tokens/revoked";
import type { AppEnv } from "../types";

/**
 * RFC 7009 revocation. A client can revoke only its own tokens; anything else, including unknown
 * tokens, answers 200 without effect (§2.2), so the endpoint reveals nothing. Revoking a refresh
 * token revokes its whole grant; revoking an access token denies that token at introspection and
 * userinfo until it expires: one of a grant in its GrantObject, a `client_credentials` one (no grant) in
 * the ReplayGuard (`tokens/revoked.ts`).
 */
export const revoke = new Hono<AppEnv>();

revoke.post("/revoke", noStore, attestationChallenge, formBody, clientAuth, async (c) => {
  const params = c.get("params");
  const cfg = c.get("cfg");
  const client = c.get("client");
  const token = params.get("token");
  if (!token) throw new InvalidRequest("token is required");
  const refresh = await parseHandle("refresh", token);
  if (refresh) {
    const result = await grantStub(c.env, refresh.object_id)?.revokeRefreshToken({ token_hash: refresh.hash, client_id: client.client_id });
    if (result?.ok) audit(c, { event: "token.revoked", outcome: "success", client_id: client.client_id, detail: `refresh token, grant ${refresh.object_id}` });
    return c.body(null, 200);
  }
  const t = now();
  const claims = await verifyAccessToken(c.env, cfg, token, t);
  if (claims && claims.client_id === client.client_id) {
    const result = claims.gid
      ? await grantStub(c.env, claims.gid)?.revokeAccessToken({ jti: claims.jti, exp: claims.exp, client_id: client.client_id, now: t })
      : await revokeClientToken(c.env, claims.jti, claims.exp, t);
    if (result?.ok)
      audit(c, { event: "token.revoked", outcome: "success", client_id: client.client_id, subject: claims.sub, detail: `access token ${claims.jti}` });
  }
  return c.body(null, 200);
});
revoke.all("/revoke", methodNotAllowed("POST"));
