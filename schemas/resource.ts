import * as v from "valibot";
import type { AttestationPolicy } from "./attestation";

const scopeToken = v.pipe(v.string(), v.regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,100}$/, "must be a scope token (RFC 6749 §3.3)"));

/** `POST /admin/resources`: a protected resource (an MCP server or any API) that tokens can be bound to. */
export const ResourceInputSchema = v.pipe(
  v.object({
    /** RFC 8707 §2 resource indicator: absolute URI, no fragment. Tokens get it as `aud`. */
    resource: v.pipe(
      v.string(),
      v.url("must be an absolute URI"),
      v.maxLength(2000),
      v.check((s) => !s.includes("#"), "must not contain a fragment (RFC 8707 §2)"),
    ),
    /** Shown on the consent page. */
    name: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
    /** RFC 9728 §2 `scopes_supported`: the scopes a token for this resource may carry. */
    scopes_supported: v.pipe(v.array(scopeToken), v.maxLength(100)),
    /**
     * The scopes this resource grants with `client_credentials` to clients that registered themselves (dynamic or
     * pushed registration, client ID metadata documents), no user involved. None by default: client credentials
     * is for access "previously arranged" (OAuth 2.1 §4.2), as an administrator's registration of a client is.
     */
    self_registered_client_credentials_scopes: v.optional(v.pipe(v.array(scopeToken), v.maxLength(100))),
  }),
  v.forward(
    v.check(
      (r) => (r.self_registered_client_credentials_scopes ?? []).every((s) => r.scopes_supported.includes(s)),
      "must name only scopes in scopes_supported",
    ),
    ["self_registered_client_credentials_scopes"],
  ),
);

export type ResourceInput = v.InferOutput<typeof ResourceInputSchema>;

/** A registered resource. */
export interface Resource extends ResourceInput {
  id: string;
  created_at: number;
  /** Attestation policy for tokens to this resource (`PUT /admin/policies/resources/{id}`). */
  attestation_policy?: AttestationPolicy;
}

/** `POST /admin/users`: a local account. */
export const UserInputSchema = v.object({
  email: v.pipe(v.string(), v.trim(), v.toLowerCase(), v.email("must be an email address"), v.maxLength(254)),
  password: v.pipe(v.string(), v.minLength(12, "must be at least 12 characters"), v.maxLength(1024)),
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
});

export type UserInput = v.InferOutput<typeof UserInputSchema>;

/** PBKDF2 parameters and output, stored with the user so the count can be raised later. */
export interface PasswordHash {
  /** `PBKDF2-SHA256-CHAIN` (`workers/password.ts`); `PBKDF2-SHA256` is one call, as hashes were first written. */
  alg: "PBKDF2-SHA256-CHAIN" | "PBKDF2-SHA256";
  iterations: number;
  salt: string;
  hash: string;
}

/** A local account as stored; `id` is the OIDC `sub`. */
export interface User {
  id: string;
  email: string;
  name: string;
  password: PasswordHash;
  created_at: number;
  /** The generation of the user's sessions: signing out everywhere moves it on, and a session of another no longer counts. */
  session_generation?: number;
}

/** The public view of a user (no password hash). */
export function userInformation(user: User): Omit<User, "password"> {
  const { password: _password, ...info } = user;
  return info;
}
