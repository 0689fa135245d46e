/** RFC 9728 §2 protected resource metadata. */
export interface ProtectedResourceMetadata {
  /** REQUIRED: the resource identifier, equal to the one the metadata URL was derived from. */
  resource: string;
  /** Issuers of the authorization servers that protect this resource. */
  authorization_servers: string[];
  scopes_supported?: string[];
  /** How tokens may be sent; only `header` (RFC 6750 §2.1), never the query. */
  bearer_methods_supported?: Array<"header" | "body">;
  resource_name?: string;
  resource_documentation?: string;
  /** RFC 9728 §2: the DPoP proof algorithms accepted (RFC 9449). */
  dpop_signing_alg_values_supported?: string[];
  /** RFC 9728 §2: whether only DPoP-bound access tokens are accepted. */
  dpop_bound_access_tokens_required?: boolean;
}

/**
 * RFC 9728 §3.1: the metadata URL inserts `/.well-known/oauth-protected-resource` between the host
 * and the path of the resource identifier. `https://mcp.example/mcp` →
 * `https://mcp.example/.well-known/oauth-protected-resource/mcp`.
 */
export function metadataUrl(resource: string): string {
  const u = new URL(resource);
  const path = u.pathname === "/" ? "" : u.pathname;
  return `${u.origin}/.well-known/oauth-protected-resource${path}${u.search}`;
}

/** The path part of `metadataUrl`, for routing. */
export function metadataPath(resource: string): string {
  return new URL(metadataUrl(resource)).pathname;
}
