import { type Context, Hono } from "hono";
import { registry } from "../clients/cache";
import { now } from "../clock";
import { acceptProof, nonceToProvide } from "../dpop/accept";
import { DPOP_ALGS, readDpopHeader } from "../dpop/proof";
import { InsufficientScope, InvalidDpopProofAtResource, InvalidRequest, InvalidToken, OAuthError, UseDpopNonceAtResource } from "../errors";
import { formBody, mediaType } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { inspectToken } from "../tokens/inspect";
import type { AppEnv } from "../types";

/**
 * OIDC Core §5.3 UserInfo. Only access tokens whose audience is this authorization server are
 * accepted: a token bound to a resource is for that resource alone (RFC 8707), so it is refused
 * here with 401 invalid_token. Errors follow RFC 6750 §3 with a WWW-Authenticate challenge.
 *
 * DPoP (RFC 9449 §7): a DPoP-bound token comes as `Authorization: DPoP <token>` with a proof whose
 * `ath` is the token's hash and whose key is the token's `cnf.jkt`; the same token as Bearer is refused.
 * Errors go in the challenge of the scheme the client used (§7.2), and Bearer challenges that may
 * lead the client to DPoP also advertise it with `algs`.
 */
export const userinfo = new Hono<AppEnv>();

type Scheme = "Bearer" | "DPoP";

/** RFC 9449 §7.1: "An algs parameter SHOULD be included". */
const ALGS = `algs="${DPOP_ALGS.join(" ")}"`;

function challenge(error: OAuthError, scheme: Scheme, advertiseDpop = false): OAuthError {
  const params = [`error="${error.error}"`, `error_description="${error.description}"`];
  if (error.error === "insufficient_scope") params.push(`scope="openid"`);
  if (scheme === "DPoP") error.headers["WWW-Authenticate"] = `DPoP ${[...params, ALGS].join(", ")}`;
  else error.headers["WWW-Authenticate"] = `Bearer ${params.join(", ")}${advertiseDpop ? `, DPoP ${ALGS}` : ""}`;
  return error;
}

/**
 * The token and how it came: RFC 6750 Bearer (header or form body) or RFC 9449 DPoP (header only).
 * Another scheme (Basic, say) is no attempt at a token; RFC 6750 §3.1: "If the request lacks any
 * authentication information (e.g., the client ... attempted using an unsupported authentication
 * method), the resource server SHOULD NOT include an error code or other error information."
 */
function present(c: Context<AppEnv>, bodyToken: string | undefined): { scheme: Scheme; token: string } | undefined {
  const raw = c.req.header("authorization");
  const header = raw && /^(Bearer|DPoP)( |$)/i.test(raw) ? raw : undefined;
  const m = header ? /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header) : null;
  if (header && !m) throw challenge(new InvalidRequest("the Authorization header must carry a Bearer or DPoP token"), "Bearer");
  if (m && bodyToken) throw challenge(new InvalidRequest("send the access token in one place only (RFC 6750 §2)"), "Bearer");
  if (m) return { scheme: (m[1] as string).toLowerCase() === "dpop" ? "DPoP" : "Bearer", token: m[2] as string };
  return bodyToken ? { scheme: "Bearer", token: bodyToken } : undefined;
}

/**
 * RFC 9449 §7.1: for a DPoP-bound token "a resource server MUST check that a DPoP proof was also received
 * in the DPoP header field of the HTTP request, check the DPoP proof according to the rules in Section 4.3,
 * and check that the public key of the DPoP proof matches the public key to which the access token is bound".
 */
async function checkBinding(c: Context<AppEnv>, token: string, jkt: string): Promise<void> {
  const header = readDpopHeader(c.req.raw.headers);
  if (!header.ok) throw challenge(new InvalidDpopProofAtResource(header.description), "DPoP");
  if (header.proof === undefined) throw challenge(new InvalidDpopProofAtResource("a DPoP proof is required with a DPoP-bound access token"), "DPoP");
  const accepted = await acceptProof(c, header.proof, token);
  if (!accepted.ok) {
    const error = accepted.error === "use_dpop_nonce" ? new UseDpopNonceAtResource(accepted.description) : new InvalidDpopProofAtResource(accepted.description);
    throw challenge(error, "DPoP");
  }
  if (accepted.proof.jkt !== jkt) throw challenge(new InvalidToken("the DPoP proof is not signed by the key the access token is bound to"), "DPoP");
}

async function claims(c: Context<AppEnv>, presented: { scheme: Scheme; token: string }) {
  const cfg = c.get("cfg");
  const { scheme, token } = presented;
  const inspected = await inspectToken(c.env, cfg, token, now());
  if (inspected.kind !== "access_token" || !inspected.grant) throw challenge(new InvalidToken("the access token is invalid, expired or revoked"), scheme);
  const jkt = inspected.claims.cnf?.jkt;
  // draft-richer-oauth-httpsig §4: "All presentations of this token at any RS MUST contain an HTTP message
  // signature"; userinfo does not verify those, so it refuses the token in any scheme.
  if (inspected.claims.cnf?.jwk)
    throw challenge(
      new InvalidToken("the access token is bound to an HTTP message signature key (httpsig); userinfo accepts Bearer and DPoP tokens only"),
      scheme,
    );
  // RFC 9449 §7.2: a protected resource supporting both schemes "MUST reject a DPoP-bound access token received as a bearer token".
  if (jkt && scheme === "Bearer") {
    throw challenge(new InvalidToken("the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof"), "Bearer", true);
  }
  if (!jkt && scheme === "DPoP") throw challenge(new InvalidToken("the access token is not DPoP-bound; send it with the Bearer scheme"), "DPoP");
  if (jkt) await checkBinding(c, token, jkt);
  if (inspected.claims.aud !== cfg.ISSUER) throw challenge(new InvalidToken("the access token is bound to another resource"), scheme);
  const scope = new Set((inspected.claims.scope ?? "").split(" "));
  if (!scope.has("openid")) throw challenge(new InsufficientScope("the access token lacks the openid scope"), scheme);
  const user = await registry(c.env).getUser(inspected.claims.sub);
  if (!user) throw challenge(new InvalidToken("the access token's user no longer exists"), scheme);
  return {
    sub: user.id,
    ...(scope.has("profile") ? { name: user.name } : {}),
    ...(scope.has("email") ? { email: user.email } : {}),
  };
}

async function handle(c: Context<AppEnv>, bodyToken?: string) {
  const presented = present(c, bodyToken);
  if (!presented) {
    const error = new InvalidToken("an access token is required");
    // RFC 6750 §3.1 and RFC 9449 §7.2: no error code when the request carried no credentials; both schemes offered.
    const realm = `realm="${c.get("cfg").ISSUER}"`;
    error.headers["WWW-Authenticate"] = `Bearer ${realm}, DPoP ${realm}, ${ALGS}`;
    throw error;
  }
  // RFC 9449 §8.2 / §9: a DPoP request gets the next nonce with every answer, error or not.
  const nonce = presented.scheme === "DPoP" || c.req.header("dpop") !== undefined ? await nonceToProvide(c) : undefined;
  try {
    const body = await claims(c, presented);
    if (nonce !== undefined) c.header("DPoP-Nonce", nonce);
    return c.json(body);
  } catch (error) {
    if (nonce !== undefined && error instanceof OAuthError) error.headers["DPoP-Nonce"] = nonce;
    throw error;
  }
}

userinfo.get("/userinfo", noStore, (c) => handle(c));
userinfo.post("/userinfo", noStore, async (c) => {
  // RFC 6750 §2.2: a form-encoded body may carry access_token; a body of any other type is not read.
  if (mediaType(c.req.header("content-type")) !== "application/x-www-form-urlencoded") return handle(c);
  try {
    await formBody(c, async () => {});
  } catch (error) {
    // RFC 6750 §3: every error of a protected resource carries the challenge, a refused form body's too.
    if (error instanceof OAuthError) throw challenge(error, "Bearer");
    throw error;
  }
  return handle(c, c.get("params").get("access_token"));
});
userinfo.all("/userinfo", methodNotAllowed("GET, POST"));
