/** What every oauth4webapi test needs against the loopback server: the insecure switch and discovery. */
import * as oauth from "oauth4webapi";
import { type AuthorizationServer, createClient, type RegisteredClient } from "./harness";

/** Loopback http issuer: oauth4webapi refuses http unless told (the issuer check allows loopback). */
export const insecure = { [oauth.allowInsecureRequests]: true } as const;

/** RFC 8414 (`oauth2`) or OIDC Discovery (`oidc`) metadata of the server, as oauth4webapi validates it. */
export async function discover(server: AuthorizationServer, algorithm: "oauth2" | "oidc" = "oidc"): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(server.issuer);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm, ...insecure }));
}

/**
 * An authorization request with PKCE (S256) and a fresh `state`: the URL to open in the browser, and
 * the verifier and state the client keeps for the callback and the token request.
 */
export async function codeRequest(
  as: oauth.AuthorizationServer,
  params: { client_id: string; redirect_uri: string } & Record<string, string>,
): Promise<{ url: string; verifier: string; state: string }> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint as string);
  url.search = new URLSearchParams({
    response_type: "code",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    ...params,
  }).toString();
  return { url: url.href, verifier, state };
}

/** A confidential client (`client_secret_basic`) registered with `metadata`, as oauth4webapi addresses it. */
export interface ConfidentialClient {
  registered: RegisteredClient;
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

export async function registerConfidential(server: AuthorizationServer, metadata: Record<string, unknown>): Promise<ConfidentialClient> {
  const registered = await createClient(server, { token_endpoint_auth_method: "client_secret_basic", ...metadata });
  return { registered, client: { client_id: registered.client_id }, auth: oauth.ClientSecretBasic(registered.client_secret as string) };
}
