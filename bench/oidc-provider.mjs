// Peer: node-oidc-provider (a certified OpenID provider) on Node 22, issuing RFC 9068 JWT access
// tokens signed ES256 for client_credentials. Its resourceIndicators feature is what makes it issue
// JWTs: getResourceServerInfo answers `accessTokenFormat: "jwt"` for the one resource, and
// defaultResource binds a request without `resource` to it. A child process of bench/run.mjs, so
// that its CPU time can be read from /proc; it tells the parent over IPC when it listens.
import { generateKeyPair } from "node:crypto";
import { promisify } from "node:util";
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
export const RESOURCE = "http://localhost:8788/mcp";

const { privateKey } = await promisify(generateKeyPair)("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "bench-es256", alg: "ES256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "bench",
      client_secret: "bench-secret-0123456789abcdef0123456789abcdef",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      // Its default is RS256, and this provider has only the ES256 key access tokens need.
      id_token_signed_response_alg: "ES256",
      scope: "mcp:read mcp:write",
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ["mcp:read", "mcp:write"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== RESOURCE) throw new Provider.errors.InvalidTarget();
        return { scope: "mcp:read mcp:write", audience: RESOURCE, accessTokenTTL: 600, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } } };
      },
    },
  },
});
// Only warnings about the in-memory adapter and development keys would be logged; neither matters here.
provider.on("server_error", (_ctx, error) => console.error("oidc-provider server_error", error));

const server = provider.listen(port, "127.0.0.1", () => process.send?.({ ready: true, pid: process.pid }));
server.keepAliveTimeout = 60_000;
process.on("disconnect", () => process.exit(0));
