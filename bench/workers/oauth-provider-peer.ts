import { type OAuthHelpers, OAuthProvider } from "@cloudflare/workers-oauth-provider";

/** The bindings Miniflare gives this peer (bench/servers.mjs); the library stores everything in KV. */
interface PeerEnv {
  OAUTH_KV: KVNamespace;
  /** Where the bench serves this Worker, e.g. `http://127.0.0.1:8790`. */
  ORIGIN: string;
  OAUTH_PROVIDER: OAuthHelpers;
}

/**
 * Peer: `@cloudflare/workers-oauth-provider` as one Worker, measured on its refresh_token grant.
 * Its tokens are minted through its own API: `POST /bench/client` registers a confidential client,
 * and `/authorize` approves every request at once (`completeAuthorization`) for a fresh user, so
 * each code starts its own grant and refresh-token family.
 */
const defaultHandler = {
  async fetch(request: Request, env: PeerEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/bench/client" && request.method === "POST") {
      const client = await env.OAUTH_PROVIDER.createClient({
        redirectUris: ["https://app.example/callback"],
        grantTypes: ["authorization_code", "refresh_token"],
        tokenEndpointAuthMethod: "client_secret_basic",
        clientName: "bench",
      });
      return Response.json({ client_id: client.clientId, client_secret: client.clientSecret });
    }
    if (url.pathname === "/authorize") {
      const authRequest = await env.OAUTH_PROVIDER.parseAuthRequest(request);
      const { redirectTo } = await env.OAUTH_PROVIDER.completeAuthorization({
        request: authRequest,
        userId: `user-${crypto.randomUUID()}`,
        metadata: {},
        scope: authRequest.scope,
        props: { bench: true },
        revokeExistingGrants: false,
      });
      return Response.redirect(redirectTo, 302);
    }
    return new Response("not found", { status: 404 });
  },
};

let provider: OAuthProvider<PeerEnv> | undefined;

export default {
  fetch(request, env, ctx): Promise<Response> {
    // Built on first use: the resource it protects is named after the origin the bench chose.
    provider ??= new OAuthProvider<PeerEnv>({
      apiRoute: "/mcp",
      apiHandler: { fetch: () => Response.json({ ok: true }) },
      defaultHandler,
      authorizeEndpoint: "/authorize",
      tokenEndpoint: "/oauth/token",
      scopesSupported: ["mcp:read", "mcp:write"],
      resourceMetadata: { resource: `${env.ORIGIN}/mcp`, authorization_servers: [env.ORIGIN] },
    });
    return provider.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<PeerEnv>;
