import type { AUTH_METHODS, Client } from "../schemas/client";
import type { VerifiedAttestation } from "./attestation/authenticate";
import type { SignatureKey } from "./clients/httpsig-auth";
import type { Config } from "./config";
import type { DpopProof } from "./dpop/proof";
import type { Params } from "./middleware/form-body";
import type { AuditRecord } from "./observe/audit";

/** How the client proved who it is on this request (RFC 7591 §2 method names). */
export type AuthMethod = (typeof AUTH_METHODS)[number];

/**
 * The Hono environment every route shares. Read variables with `c.get(name)`: Hono's `c.var` builds a
 * new object of every variable on each read.
 */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    /** This request's id (`middleware/request-context.ts`), also the `X-Request-Id` response header. */
    request_id: string;
    /** The audit events of this request, written with its log line (`middleware/request-context.ts`). */
    audit_trail: AuditRecord[];
    /** Parsed configuration (`workers/config.ts`). */
    cfg: Config;
    /** Request parameters (`middleware/form-body.ts`). */
    params: Params;
    /** The authenticated (or identified public) client (`middleware/client-auth.ts`). */
    client: Client;
    auth_method: AuthMethod;
    /** The request's accepted DPoP proof, if it carried one (`middleware/dpop.ts`, RFC 9449). */
    dpop?: DpopProof;
    /** What a Client Attestation established about the client instance (`attestation/authenticate.ts`). */
    attestation?: VerifiedAttestation;
    /** The key of the request's HTTP message signature, when the client authenticated by one (`clients/httpsig-auth.ts`). */
    httpsig?: SignatureKey;
  };
}
