import { type Context, Hono, type MiddlewareHandler } from "hono";
import { InvalidRequest, OAuthError, UnauthorizedClient, UnsupportedGrantType } from "../errors";
import { grants } from "../grants";
import { attestationChallenge, claimedClientAndIp, claimedClientId, clientAuth } from "../middleware/client-auth";
import { dpop, dpopNonce } from "../middleware/dpop";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { rateLimit } from "../middleware/rate-limit";
import { audit } from "../observe/audit";
import type { AppEnv } from "../types";

/**
 * OAuth 2.1 §3.2 token endpoint: no-store → form body → rate limit → audit → client authentication →
 * DPoP proof (RFC 9449) → the grant's handler. The endpoint never names a grant; `grants/index.ts` does.
 */
export const token = new Hono<AppEnv>();

/** Token requests per client and IP per minute (TOKEN_LIMIT); guesses at a client's secret count too. */
const tokenLimit = rateLimit("token", (env) => env.TOKEN_LIMIT, claimedClientAndIp);

/** Every outcome is an audit event: what was issued to whom, or what was refused and why. */
const auditOutcome: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  // Hono turns a thrown error into the onError response further in and leaves it in `c.error`.
  if (c.error instanceof OAuthError) {
    const grantType = c.get("params").get("grant_type") ?? "none";
    audit(c, { event: "token.refused", outcome: "failure", client_id: claimedClientId(c), detail: `${grantType} ${c.error.error}` });
  }
};

async function issue(c: Context<AppEnv>) {
  const grantType = c.get("params").get("grant_type");
  if (!grantType) throw new InvalidRequest("grant_type is required");
  const grant = grants.get(grantType);
  if (!grant) throw new UnsupportedGrantType(`grant_type ${grantType} is not supported`);
  if (!(c.get("client").grant_types as string[]).includes(grantType)) {
    throw new UnauthorizedClient(`this client is not registered for the ${grantType} grant`);
  }
  const { response, sub, aud, jti, grant_id } = await grant.handle(c);
  const detail = `${grantType} aud=${aud} jti=${jti}${grant_id ? ` grant=${grant_id}` : ""}${response.scope ? ` scope=${response.scope}` : ""}`;
  audit(c, { event: "token.issued", outcome: "success", client_id: c.get("client").client_id, subject: sub, detail });
  return c.json(response);
}

token.post("/token", noStore, attestationChallenge, formBody, tokenLimit, auditOutcome, dpopNonce, clientAuth, dpop, issue);
token.all("/token", methodNotAllowed("POST"));
