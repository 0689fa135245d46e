import { Hono } from "hono";
import { InvalidRequest, UnauthorizedClient, UnsupportedGrantType } from "../errors";
import { grants } from "../grants";
import { clientAuth } from "../middleware/client-auth";
import { dpop } from "../middleware/dpop";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";

/**
 * OAuth 2.1 §3.2 token endpoint: no-store → form body → client authentication → DPoP proof (RFC 9449) →
 * the grant's handler.
 * The endpoint never names a grant; `grants/index.ts` does.
 */
export const token = new Hono<AppEnv>();

token.post("/token", noStore, formBody, clientAuth, dpop, async (c) => {
  const grantType = c.var.params.get("grant_type");
  if (!grantType) throw new InvalidRequest("grant_type is required");
  const grant = grants.get(grantType);
  if (!grant) throw new UnsupportedGrantType(`grant_type ${grantType} is not supported`);
  if (!(c.var.client.grant_types as string[]).includes(grantType)) {
    throw new UnauthorizedClient(`this client is not registered for the ${grantType} grant`);
  }
  return c.json(await grant.handle(c));
});
token.all("/token", methodNotAllowed("POST"));
