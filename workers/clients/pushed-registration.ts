import * as v from "valibot";
import { type Client, DYNAMIC_CLIENT_ID, type PushedRegistration, PushedRegistrationSchema } from "../../schemas/client";
import { InvalidClientMetadata, InvalidRequest, InvalidSoftwareStatement } from "../errors";
import type { Params } from "../middleware/form-body";
import { parseMetadataJson } from "./metadata";
import { redirectUriProblem } from "./redirect-uri";

/**
 * Pushed client registration (draft-richer-oauth-pushed-client-registration-00): a client with no
 * registration uses the static `client_id` `urn:ietf:oauth:parameters:dynamic`, starts every
 * authorization at the pushed authorization request endpoint, and may push RFC 7591 metadata about
 * itself as `client_registration`. Nothing about it is verified: it is a public client, its redirect URI
 * is the one it pushed, and its name is only what it says it is called.
 */

/**
 * The client record of an unregistered client for one request: public (`none`), the authorization code
 * and refresh token grants (draft §3.4: "The AS MAY issue a refresh token"), and at most the one
 * redirect URI it pushed. At the token endpoint neither is known, and neither is needed: the code is
 * bound to its redirect URI and PKCE challenge.
 */
export function dynamicClient(registration?: PushedRegistration, redirect_uri?: string): Client {
  return {
    ...registration,
    client_id: DYNAMIC_CLIENT_ID,
    client_id_issued_at: 0,
    redirect_uris: redirect_uri ? [redirect_uri] : [],
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    application_type: "web",
    id_token_signed_response_alg: "RS256",
    require_pushed_authorization_requests: true,
    registered_by: "pushed_registration",
  };
}

/**
 * The checks the draft adds to a pushed request with the dynamic `client_id`, then the client it
 * describes. Draft §3.1: "The request MUST include a state value ... MUST include a redirect_uri value.
 * The request MUST include an OAuth PKCE request" (PKCE is checked for every request anyway).
 * Throws `invalid_request`, `invalid_client_metadata` or `invalid_software_statement`.
 */
export function pushedClient(params: Params): { client: Client; registration?: PushedRegistration } {
  if (!params.has("state")) throw new InvalidRequest("state is required for an unregistered client (pushed client registration)");
  const redirect_uri = params.get("redirect_uri");
  if (!redirect_uri) throw new InvalidRequest("redirect_uri is required for an unregistered client (pushed client registration)");
  const problem = redirectUriProblem(redirect_uri);
  if (problem) throw new InvalidRequest(`redirect_uri ${problem}`);
  const pushed = parseClientRegistration(params.get("client_registration"));
  if (pushed?.redirect_uris && !pushed.redirect_uris.includes(redirect_uri)) {
    throw new InvalidRequest("redirect_uri is not one of the client_registration's redirect_uris");
  }
  const registration = pushed ? displayPart(pushed) : undefined;
  return { client: dynamicClient(registration, redirect_uri), ...(registration ? { registration } : {}) };
}

/** Parses `client_registration`: a JSON object of RFC 7591 metadata, form-encoded (draft §3.1). */
function parseClientRegistration(raw: string | undefined): v.InferOutput<typeof PushedRegistrationSchema> | undefined {
  if (raw === undefined) return undefined;
  const json = parseMetadataJson(raw, "client_registration");
  if ("software_statement" in json) throw new InvalidSoftwareStatement("software statements are not supported by this server");
  const parsed = v.safeParse(PushedRegistrationSchema, json);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new InvalidClientMetadata(`client_registration.${v.getDotPath(issue) ?? "?"}: ${issue.message}`);
  }
  return parsed.output;
}

function displayPart(r: v.InferOutput<typeof PushedRegistrationSchema>): PushedRegistration {
  return r.client_name !== undefined ? { client_name: r.client_name } : {};
}
