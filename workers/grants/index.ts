import { authorizationCode } from "./authorization-code";
import { ciba } from "./ciba";
import { clientCredentials } from "./client-credentials";
import { deviceCode } from "./device-code";
import { refreshToken } from "./refresh-token";
import type { GrantHandler } from "./types";

/** Every grant the token endpoint serves, by `grant_type`. Adding a grant means adding it here. */
export const grants: ReadonlyMap<string, GrantHandler> = new Map(
  [authorizationCode, clientCredentials, refreshToken, ciba, deviceCode].map((g) => [g.grant_type, g]),
);
