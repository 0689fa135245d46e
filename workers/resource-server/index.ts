/**
 * The resource-server kit: everything an MCP server (or any Hono API) on Workers needs to trust
 * Latchkey. See README "Protecting an MCP server".
 */

export { checkToolScopes } from "./mcp";
export { metadataPath, metadataUrl, type ProtectedResourceMetadata } from "./metadata";
export { challenge, insufficientScope, type RequireTokenOptions, requireAccessToken, type TokenVariables, unauthorized } from "./middleware";
export { type AccessToken, createTokenVerifier, type VerifierOptions, type VerifyResult } from "./verify";
