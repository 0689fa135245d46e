import type { Context } from "hono";
import { MAX_REGISTRATION_BYTES, parseMetadataJson } from "../clients/metadata";
import { InvalidClientMetadata, InvalidToken } from "../errors";
import type { AppEnv } from "../types";
import { mediaType } from "./form-body";

/**
 * The JSON object of an RFC 7591 registration or RFC 7592 update request, at most 16 KB. Every problem
 * is `invalid_client_metadata` (RFC 7591 §3.2.2), as registration clients expect.
 */
export async function readRegistrationBody(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  if (!isJson(c.req.header("content-type"))) {
    throw new InvalidClientMetadata("the registration request must be application/json");
  }
  const length = Number(c.req.header("content-length") ?? 0);
  if (length > MAX_REGISTRATION_BYTES) throw new InvalidClientMetadata("the registration request is too large");
  return parseMetadataJson(await c.req.text(), "the registration request");
}

/** Whether a Content-Type header value is `application/json` by its media type (`mediaType`): not a prefix, so `application/jsonx` is not JSON. */
export function isJson(contentType: string | undefined): boolean {
  return mediaType(contentType) === "application/json";
}

/**
 * The RFC 6750 bearer token in the Authorization header (an initial access token or a registration
 * access token). Without one: 401 `invalid_token` whose challenge, as RFC 6750 §3.1 asks for a request
 * that carried no credentials, has no error code. `what` names the token the error asks for.
 */
export function requireBearer(c: Context<AppEnv>, what: string): string {
  const header = c.req.header("authorization");
  const token = header ? /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header)?.[1] : undefined;
  if (token) return token;
  const error = header ? new InvalidToken(`the Authorization header must carry ${what} as a Bearer token`) : new InvalidToken(`${what} is required`);
  error.headers["WWW-Authenticate"] = header ? `Bearer realm="${c.get("cfg").ISSUER}", error="invalid_token"` : `Bearer realm="${c.get("cfg").ISSUER}"`;
  throw error;
}

/** 401 `invalid_token` with its RFC 6750 challenge. */
export function invalidToken(c: Context<AppEnv>, description: string): InvalidToken {
  const error = new InvalidToken(description);
  error.headers["WWW-Authenticate"] = `Bearer realm="${c.get("cfg").ISSUER}", error="invalid_token"`;
  return error;
}
