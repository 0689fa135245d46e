import type { Context } from "hono";
import { type Client, DYNAMIC_CLIENT_ID } from "../../schemas/client";
import { findClient } from "../clients/cache";
import { markUsed } from "../clients/last-used";
import { now } from "../clock";
import { InvalidRequest, OAuthError } from "../errors";
import type { AppEnv } from "../types";
import { openPushedRequest, REQUEST_URI_PREFIX } from "./pushed";
import { RedirectableError, resolveRedirectUri, UntrustedRedirect, validateAuthorizationParameters } from "./request";
import type { Interaction } from "./session";

/**
 * What the authorization endpoint was asked, in either of its forms: `client_id` + `request_uri` naming
 * a pushed request (RFC 9126 §4), or a request carrying all its parameters. Throws `UntrustedRedirect`
 * (show a page) or `RedirectableError` (send the error to the client).
 */
export async function readAuthorizationRequest(c: Context<AppEnv>): Promise<{ client: Client; interaction: Interaction }> {
  const params = c.get("params");
  const clientId = params.get("client_id");
  if (!clientId) throw new UntrustedRedirect(new InvalidRequest("client_id is missing"));
  // Any other request_uri would be a request object by reference (RFC 9101), which is not supported:
  // validation below answers request_uri_not_supported to the client.
  const requestUri = params.get("request_uri");
  if (requestUri?.startsWith(REQUEST_URI_PREFIX)) return openPushedRequest(c, clientId, requestUri);

  // draft-richer-oauth-pushed-client-registration §3.1: "The client MUST start the transaction using a
  // pushed authorization request". Without one there is no redirect URI to answer at.
  if (clientId === DYNAMIC_CLIENT_ID) {
    throw new UntrustedRedirect(new InvalidRequest("an unregistered client must start with a pushed authorization request (request_uri)"));
  }
  let client: Client | null;
  try {
    client = await findClient(c.env, clientId);
  } catch (error) {
    // CIMD "Metadata Discovery Errors": if fetching the document fails, the AS "SHOULD abort the
    // authorization request" — with no trustworthy redirect URI, that means the error page.
    if (error instanceof OAuthError) throw new UntrustedRedirect(error);
    throw error;
  }
  if (!client) throw new UntrustedRedirect(new InvalidRequest("the client is not known to this server"));
  const redirect_uri = resolveRedirectUri(client, params);
  // RFC 9126 §4: when PAR is required, the server "will refuse, using the invalid_request error code, to
  // process any request to the authorization endpoint that does not have a request_uri parameter with a
  // value obtained from the PAR endpoint".
  if (client.require_pushed_authorization_requests || c.get("cfg").REQUIRE_PUSHED_AUTHORIZATION_REQUESTS) {
    const error = new InvalidRequest("this client must use pushed authorization requests (RFC 9126)");
    throw new RedirectableError(error, client, redirect_uri, params.get("state"));
  }
  const request = await validateAuthorizationParameters(c.env, client, params);
  markUsed(c, client);
  return { client, interaction: { ...request, iat: now() } };
}
