import { Hono } from "hono";
import { DYNAMIC_CLIENT_ID } from "../../schemas/client";
import { CLIENT_AUTHENTICATION_PARAMETERS, REQUEST_URI_PREFIX } from "../authorize/pushed";
import { RedirectableError, UntrustedRedirect, validateAuthorizationParameters } from "../authorize/request";
import { findResource } from "../clients/cache";
import { pushedClient } from "../clients/pushed-registration";
import { now } from "../clock";
import { InvalidRequest, ServerError } from "../errors";
import { attestationChallenge, claimedClientAndIp, clientAuth } from "../middleware/client-auth";
import { dpopNonce, dpopProof } from "../middleware/dpop";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { rateLimit } from "../middleware/rate-limit";
import { enforceAttestationPolicy } from "../policy/attestation";
import { parseResources, parseScope } from "../policy/scope";
import { mintHandle } from "../tokens/handles";
import type { AppEnv } from "../types";

/**
 * RFC 9126 pushed authorization request endpoint, for every client: no-store → form body (413 when too
 * large) → client authentication as at the token endpoint → the same validation the authorization
 * endpoint runs, answered here as JSON 400 instead of a redirect → one PushedRequest object holding
 * the parameters under the hash of the `request_uri` handle that names it.
 *
 * With `client_id=urn:ietf:oauth:parameters:dynamic` this is also where pushed client registration
 * (draft-richer-oauth-pushed-client-registration) starts: the request describes its own client.
 */
export const par = new Hono<AppEnv>();

/**
 * Pushed requests per client and IP per minute, counted as token requests are (TOKEN_LIMIT, its own key):
 * each one is a Durable Object, and a public client's `client_id` is anyone's to push under.
 */
const parLimit = rateLimit("par", (env) => env.TOKEN_LIMIT, claimedClientAndIp);

par.post("/par", noStore, attestationChallenge, formBody, parLimit, dpopNonce, clientAuth, dpopProof({ requiredForBoundClients: false }), async (c) => {
  const cfg = c.get("cfg");
  let params = c.get("params");
  // RFC 9126 §2.1: "The request_uri authorization request parameter is one exception, and it MUST NOT be provided."
  if (params.has("request_uri")) throw new InvalidRequest("request_uri must not be sent to the pushed authorization request endpoint");
  // RFC 9449 §10.1: a DPoP proof at PAR binds the code to its key, like dpop_jkt; with both they must agree.
  const proved = c.get("dpop")?.jkt;
  if (proved) {
    const named = params.get("dpop_jkt");
    if (named !== undefined && named !== proved) throw new InvalidRequest("dpop_jkt does not match the key of the DPoP proof");
    params = params.with("dpop_jkt", proved);
  }
  // RFC 9126 §2.1 requires client_id here; one that authenticated with HTTP Basic is named by that alone
  // (a different body client_id is refused by client authentication), and stored with its request.
  const client = c.get("client").client_id === DYNAMIC_CLIENT_ID ? pushedClient(params).client : c.get("client");
  try {
    // RFC 9126 §2.3: the error is the one the authorization endpoint would have sent, as JSON here;
    // a bad redirect URI, which is never redirected, is invalid_request.
    await validateAuthorizationParameters(c.env, client, params);
  } catch (error) {
    throw error instanceof UntrustedRedirect || error instanceof RedirectableError ? error.error : error;
  }
  // Attestation policy is known here, where the client presented its attestation: refuse early what the
  // token endpoint would refuse anyway.
  const resources = await Promise.all(parseResources(params.all("resource")).map((uri) => findResource(c.env, uri)));
  enforceAttestationPolicy(c, { scope: parseScope(params.get("scope")) ?? [], resources });
  const id = c.env.PUSHED_REQUESTS.newUniqueId();
  const handle = await mintHandle("request", id.toString());
  const expires_in = cfg.PUSHED_REQUEST_TTL;
  // RFC 9126 §2.1: client authentication parameters "are relied upon only for client authentication".
  const pushed = await c.env.PUSHED_REQUESTS.get(id).push({
    hash: handle.hash,
    client_id: client.client_id,
    params: params.without(CLIENT_AUTHENTICATION_PARAMETERS).toString(),
    expires_at: now() + expires_in,
  });
  if (!pushed.ok) throw new ServerError("could not store the pushed request", "unique PushedRequest id already existed");
  return c.json({ request_uri: `${REQUEST_URI_PREFIX}${handle.token}`, expires_in }, 201);
});
par.all("/par", methodNotAllowed("POST"));
