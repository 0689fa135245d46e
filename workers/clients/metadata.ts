import * as v from "valibot";
import { type ClientMetadata, ClientMetadataSchema } from "../../schemas/client";
import { InvalidClientMetadata, InvalidRedirectUri } from "../errors";
import { redirectUriProblem } from "./redirect-uri";

/**
 * Validates RFC 7591 client metadata: the schema, then the rules that span fields. Throws
 * `invalid_redirect_uri` or `invalid_client_metadata` (RFC 7591 §3.2.2) naming the first problem.
 */
export function validateClientMetadata(input: unknown, opts: { allowHttpLoopbackNotificationEndpoint?: boolean } = {}): ClientMetadata {
  const parsed = v.safeParse(ClientMetadataSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const path = v.getDotPath(issue);
    if (path?.startsWith("redirect_uris")) throw new InvalidRedirectUri(`redirect_uris: ${issue.message}`);
    throw new InvalidClientMetadata(`${path ?? "body"}: ${issue.message}`);
  }
  const grants = new Set(parsed.output.grant_types);
  const m = { ...parsed.output, response_types: parsed.output.response_types ?? (grants.has("authorization_code") ? ["code" as const] : []) };
  for (const uri of m.redirect_uris) {
    const problem = redirectUriProblem(uri);
    if (problem) throw new InvalidRedirectUri(`redirect_uri ${JSON.stringify(uri)} ${problem}`);
  }
  // RFC 7591 §2.1: grant_types and response_types must be consistent.
  if (grants.has("authorization_code") !== m.response_types.includes("code")) {
    throw new InvalidClientMetadata("grant_types authorization_code and response_types code go together");
  }
  if (grants.has("authorization_code") && m.redirect_uris.length === 0) {
    throw new InvalidRedirectUri("redirect_uris is required for the authorization_code grant");
  }
  if (grants.has("refresh_token") && !USER_GRANTS.some((g) => grants.has(g))) {
    throw new InvalidClientMetadata("refresh_token is only issued with the authorization_code, CIBA or device_code grant");
  }
  backchannelProblem(m, grants, opts.allowHttpLoopbackNotificationEndpoint ?? false);
  // OAuth 2.1 §4.2: "The client credentials grant type MUST only be used by confidential clients."
  if (grants.has("client_credentials") && m.token_endpoint_auth_method === "none") {
    throw new InvalidClientMetadata("client_credentials requires a confidential client (not token_endpoint_auth_method none)");
  }
  return { ...m, grant_types: [...grants], response_types: [...new Set(m.response_types)] };
}

/** Grants through which a user authorizes a client (and which may therefore come with refresh tokens). */
const USER_GRANTS = ["authorization_code", "urn:openid:params:grant-type:ciba", "urn:ietf:params:oauth:grant-type:device_code"] as const;

/** CIBA Core §4 client metadata rules; throws `invalid_client_metadata`. */
function backchannelProblem(m: ClientMetadata, grants: Set<string>, allowHttpLoopback: boolean): void {
  const mode = m.backchannel_token_delivery_mode;
  if (!grants.has("urn:openid:params:grant-type:ciba")) {
    if (mode || m.backchannel_client_notification_endpoint) throw new InvalidClientMetadata("backchannel_* metadata needs the CIBA grant type");
    return;
  }
  // CIBA Core §4: "backchannel_token_delivery_mode: REQUIRED."
  if (!mode) throw new InvalidClientMetadata("backchannel_token_delivery_mode is required with the CIBA grant");
  // CIBA Core §7.1: the client MUST authenticate at the backchannel authentication endpoint.
  if (m.token_endpoint_auth_method === "none") throw new InvalidClientMetadata("the CIBA grant requires a confidential client");
  const endpoint = m.backchannel_client_notification_endpoint;
  if (mode === "poll") {
    if (endpoint) throw new InvalidClientMetadata("backchannel_client_notification_endpoint is only used in ping and push modes");
    return;
  }
  // CIBA Core §4: "REQUIRED if the token delivery mode is set to ping or push. This URL MUST use the https scheme."
  if (!endpoint) throw new InvalidClientMetadata(`backchannel_client_notification_endpoint is required in ${mode} mode`);
  const url = new URL(endpoint);
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  const allowed = url.protocol === "https:" || (allowHttpLoopback && url.protocol === "http:" && loopback);
  if (!allowed || url.hash || url.username || url.password) {
    throw new InvalidClientMetadata("backchannel_client_notification_endpoint must be an https URL without fragment or credentials");
  }
}

/** Whether a client authenticates with a shared secret. */
export function usesSecret(m: Pick<ClientMetadata, "token_endpoint_auth_method">): boolean {
  return m.token_endpoint_auth_method === "client_secret_basic" || m.token_endpoint_auth_method === "client_secret_post";
}
