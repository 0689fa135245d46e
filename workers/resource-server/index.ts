/**
 * The resource-server kit: everything an MCP server (or any Hono API) on Workers needs to trust
 * Latchkey. See README "Resource servers".
 *
 * - `createTokenVerifier({ issuer, resource })` verifies Latchkey access tokens (RFC 9068) against the
 *   issuer's JWKS; `requireAccessToken({ verify, resource, scopes, dpop })` is the Hono middleware that
 *   takes them from the Authorization header and sets the `accessToken` variable.
 * - DPoP (RFC 9449): a token with `cnf.jkt` is accepted only as `Authorization: DPoP <token>` with a
 *   proof for this request by that key (`ath`, `htm`, `htu` against `resource`'s origin, `iat` within
 *   `dpop.proofWindowSeconds`); as Bearer it is refused. Challenges carry `algs`. What the resource must
 *   supply itself: `dpop.claimProof`, a consistent single-use store for proof ids (the kit has no
 *   storage; without it a captured proof can be replayed within the window). Resource-server nonces
 *   (RFC 9449 §9) are not offered. `dpop.requireDpop` refuses tokens that are not DPoP-bound.
 * - HTTP message signatures (draft-richer-oauth-httpsig-03): a token with `cnf.jwk` is accepted only as
 *   `Authorization: HTTPSig <token>` with an RFC 9421 signature tagged `httpsig-oauth` by that key, covering
 *   `@method`, `@target-uri` (against `resource`'s origin) and `authorization`; `httpsig.claimNonce` is the
 *   replay hook, as for DPoP. `signRequest` is the matching client-side signer.
 * - `metadataUrl` / `metadataPath` place RFC 9728 metadata; `challenge`, `unauthorized` and
 *   `insufficientScope` answer refusals the way the middleware does; `checkToolScopes` does per-tool MCP scopes.
 *
 * Its only dependencies inside this repository are `workers/dpop/proof.ts` and `workers/httpsig/` (pure:
 * jose, structured-headers and WebCrypto).
 */

export { type SignRequestOptions, signRequest } from "../httpsig/sign";
export { checkDpop, DPOP_ALGS, type DpopOptions, type ProofCheck } from "./dpop";
export { checkHttpsig, HTTPSIG_ALGS, type HttpsigOptions, PRESENTATION_TAG, type SignatureCheck } from "./httpsig";
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
