/**
 * The resource-server kit: everything an MCP server (or any Hono API) on Workers needs to trust
 * Latchkey. See README "Resource servers".
 *
 * - `createTokenVerifier({ issuer, resource })` verifies Latchkey access tokens (RFC 9068) against the
 *   issuer's JWKS; `requireAccessToken({ verify, resource, scopes, dpop })` is the Hono middleware that
 *   takes them from the Authorization header and sets `c.var.accessToken`.
 * - DPoP (RFC 9449): a token with `cnf.jkt` is accepted only as `Authorization: DPoP <token>` with a
 *   proof for this request by that key (`ath`, `htm`, `htu` against `resource`'s origin, `iat` within
 *   `dpop.proofWindowSeconds`); as Bearer it is refused. Challenges carry `algs`. What the resource must
 *   supply itself: `dpop.claimProof`, a consistent single-use store for proof ids (the kit has no
 *   storage; without it a captured proof can be replayed within the window). Resource-server nonces
 *   (RFC 9449 §9) are not offered. `dpop.requireDpop` refuses tokens that are not DPoP-bound.
 * - `metadataUrl` / `metadataPath` place RFC 9728 metadata; `challenge`, `unauthorized` and
 *   `insufficientScope` answer refusals the way the middleware does; `checkToolScopes` does per-tool MCP scopes.
 *
 * Its only dependency inside this repository is `workers/dpop/proof.ts` (pure: jose and WebCrypto).
 */

export { checkDpop, DPOP_ALGS, type DpopOptions, type ProofCheck } from "./dpop";
export { checkToolScopes } from "./mcp";
export { metadataPath, metadataUrl, type ProtectedResourceMetadata } from "./metadata";
export {
  type ChallengeOptions,
  challenge,
  insufficientScope,
  type RequireTokenOptions,
  requireAccessToken,
  type Scheme,
  type TokenVariables,
  unauthorized,
} from "./middleware";
export { type AccessToken, createTokenVerifier, type VerifierOptions, type VerifyResult } from "./verify";
