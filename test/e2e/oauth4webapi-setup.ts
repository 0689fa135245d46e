/** What every oauth4webapi test needs against the loopback server: the insecure switch and discovery. */
import * as oauth from "oauth4webapi";
import type { AuthorizationServer } from "./harness";

/** Loopback http issuer: oauth4webapi refuses http unless told (the issuer check allows loopback). */
export const insecure = { [oauth.allowInsecureRequests]: true } as const;

/** RFC 8414 (`oauth2`) or OIDC Discovery (`oidc`) metadata of the server, as oauth4webapi validates it. */
export async function discover(server: AuthorizationServer, algorithm: "oauth2" | "oidc" = "oidc"): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(server.issuer);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm, ...insecure }));
}
