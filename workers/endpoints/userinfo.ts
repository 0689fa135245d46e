import { Hono } from "hono";
import { registry } from "../clients/cache";
import { now } from "../clock";
import { InsufficientScope, InvalidRequest, InvalidToken, type OAuthError } from "../errors";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { inspectToken } from "../tokens/inspect";
import type { AppEnv } from "../types";

/**
 * OIDC Core §5.3 UserInfo. Only access tokens whose audience is this authorization server are
 * accepted: a token bound to a resource is for that resource alone (RFC 8707), so it is refused
 * here with 401 invalid_token. Errors follow RFC 6750 §3 with a WWW-Authenticate challenge.
 */
export const userinfo = new Hono<AppEnv>();

function challenge(error: OAuthError): OAuthError {
  const scope = error.error === "insufficient_scope" ? `, scope="openid"` : "";
  error.headers["WWW-Authenticate"] = `Bearer error="${error.error}", error_description="${error.description}"${scope}`;
  return error;
}

async function handle(c: import("hono").Context<AppEnv>, bodyToken?: string) {
  const header = c.req.header("authorization");
  const fromHeader = header ? /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header)?.[1] : undefined;
  if (header && !fromHeader) throw challenge(new InvalidRequest("the Authorization header must carry a Bearer token"));
  if (fromHeader && bodyToken) throw challenge(new InvalidRequest("send the access token in one place only (RFC 6750 §2)"));
  const token = fromHeader ?? bodyToken;
  if (!token) {
    const error = new InvalidToken("an access token is required");
    // RFC 6750 §3.1: no error code when the request carried no credentials at all.
    error.headers["WWW-Authenticate"] = `Bearer realm="${c.var.cfg.ISSUER}"`;
    throw error;
  }
  const cfg = c.var.cfg;
  const inspected = await inspectToken(c.env, cfg, token, now());
  if (inspected.kind !== "access_token" || !inspected.grant) throw challenge(new InvalidToken("the access token is invalid, expired or revoked"));
  if (inspected.claims.aud !== cfg.ISSUER) throw challenge(new InvalidToken("the access token is bound to another resource"));
  const scope = new Set((inspected.claims.scope ?? "").split(" "));
  if (!scope.has("openid")) throw challenge(new InsufficientScope("the access token lacks the openid scope"));
  const user = await registry(c.env).getUser(inspected.claims.sub);
  if (!user) throw challenge(new InvalidToken("the access token's user no longer exists"));
  return c.json({
    sub: user.id,
    ...(scope.has("profile") ? { name: user.name } : {}),
    ...(scope.has("email") ? { email: user.email } : {}),
  });
}

userinfo.get("/userinfo", noStore, (c) => handle(c));
userinfo.post("/userinfo", noStore, async (c) => {
  // RFC 6750 §2.2: a form-encoded body may carry access_token.
  if (c.req.header("content-type")?.startsWith("application/x-www-form-urlencoded")) {
    return formBody(c, async () => {}).then(() => handle(c, c.var.params.get("access_token")));
  }
  return handle(c);
});
